"""Scripted engines for the grading tests: a Generator that answers from a table and a StepScorer that
scores steps by a rule. Both implement the protocols of adacot.backends.base exactly, count their calls,
and are deterministic, so a rerun produces byte-identical records."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

from adacot.api.generation import SamplingSpec
from adacot.backends.base import Completion, Prompt, Sample, StepScores, UsageCounter


def prompt_text(prompt: Prompt) -> str:
    return prompt.text if prompt.text is not None else prompt.messages[-1][1]


class ScriptedGenerator:
    """Answers each prompt with `answers(prompt_text, n)`; yields completions in reverse order (the
    protocol allows any order, and the stage must not depend on it)."""

    def __init__(self, answers: Callable[[str, int], Sequence[Sample]]) -> None:
        self.usage = UsageCounter()
        self.answers = answers
        self.prompts: list[Prompt] = []
        self.calls = 0
        self.closed = False

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        self.calls += 1
        self.prompts.extend(prompts)
        for index in reversed(range(len(prompts))):
            samples = tuple(self.answers(prompt_text(prompts[index]), sampling.samples_per_question))
            self.usage.requests += 1
            self.usage.completion_tokens += sum(s.completion_tokens for s in samples)
            yield Completion(index=index, samples=samples)

    def close(self) -> None:
        self.closed = True


def table_answers(table: Mapping[str, Sequence[str]]) -> Callable[[str, int], list[Sample]]:
    """Answers by the first table key contained in the prompt; texts cycle when n exceeds the list."""

    def answer(text: str, n: int) -> list[Sample]:
        for key, texts in table.items():
            if key in text:
                return [
                    Sample(text=texts[i % len(texts)], finish_reason="stop", completion_tokens=7)
                    for i in range(n)
                ]
        raise KeyError(f"no scripted answer for prompt {text[:60]!r}")

    return answer


def sum_answers(text: str, n: int) -> list[Sample]:
    """Answers "What is A + B?" prompts with multi-step traces: right (A + B) for about a third of the
    (prompt, sample) pairs, chosen by a hash, otherwise off by one."""
    a, b = (int(x) for x in re.findall(r"What is (\d+) \+ (\d+)", text)[0])
    digest = hashlib.sha256(text.encode()).digest()
    samples = []
    for i in range(n):
        right = digest[i % len(digest)] % 3 == 0
        steps = 1 + digest[(i + 7) % len(digest)] % 4
        body = "\n\n".join(f"Step {s}: add the digits, score=0.{s + 1}" for s in range(steps))
        answer = a + b if right else a + b + 1
        samples.append(
            Sample(
                text=f"{body}\n\nThe answer is \\boxed{{{answer}}}",
                finish_reason="stop",
                prompt_tokens=len(text) // 4,
                completion_tokens=10 * steps,
            )
        )
    return samples


class ScriptedScorer:
    """Scores step j of a trace as the number after `score=` in it, else 1 / (j + 2)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Sequence[str]]] = []
        self.closed = False

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[StepScores]:
        self.items.extend(items)
        out = []
        for _, steps in items:
            scores = []
            for j, step in enumerate(steps):
                found = re.search(r"score=([0-9.]+)", step)
                scores.append(float(found[1]) if found else 1 / (j + 2))
            out.append(StepScores(tuple(scores), truncated=len(steps) > 6))
        return out

    def close(self) -> None:
        self.closed = True
