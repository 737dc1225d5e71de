"""Helpers for the distillation tests: bank artifacts, DistillationJob resources, a scripted teacher.

The scripted teacher answers each prompt by a rule `answer(prompt_text, round, n) -> samples`, counting
rounds per prompt itself; it yields completions in reverse order (the protocol allows any order)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adacot.api.distillation_job import DistillationJob
from adacot.api.generation import SamplingSpec
from adacot.artifacts.manifest import Manifest
from adacot.artifacts.rows import BankEntry, Question
from adacot.artifacts.store import ArtifactDir
from adacot.backends.base import Completion, Prompt, Sample, UsageCounter

Rule = Callable[[str, int, int], Sequence[Sample]]


def entry(qid: str, problem: str, answer: str, level: int = 1, source: str = "src") -> BankEntry:
    question = Question(id=qid, task="math", problem=problem, answer=answer, source=source)
    return BankEntry(question=question, level=level, model="tiny", origin="grading/test")


def sum_bank(count: int, levels: Sequence[int] = (1, 2, 3)) -> list[BankEntry]:
    """Questions "What is A + B?" with their sums, levels cycling through `levels`."""
    return [
        entry(f"q{i:03d}", f"What is {i} + {2 * i + 1}?", str(3 * i + 1), level=levels[i % len(levels)])
        for i in range(count)
    ]


def write_bank(directory: Path, entries: Sequence[BankEntry]) -> Path:
    artifact = ArtifactDir(directory).prepare()
    artifact.write_shard("part-00000.jsonl", entries, BankEntry)
    artifact.finalize(Manifest(kind="DifficultyBank", name="bank"))
    return directory


def job(name: str = "dj", **spec: Any) -> DistillationJob:
    """A DistillationJob with test defaults (one verifier worker, table distribution over 1..3)."""
    body: dict[str, Any] = {
        "bankRef": {"name": "bank"},
        "distribution": {"table": {"1": 1, "2": 1, "3": 1}},
        "size": 6,
        "teacher": {"endpoint": {"url": "http://127.0.0.1:9/v1", "model": "t"}},
        "verification": {"workers": 1},
    }
    for key, value in spec.items():
        if key == "teacher" and isinstance(value, dict):
            # A teacher given with a server replaces the default endpoint (the spec allows one of them).
            base = {k: v for k, v in body[key].items() if not ("server" in value and k == "endpoint")}
            body[key] = {**base, **value}
        else:
            body[key] = value
    return DistillationJob.model_validate(
        {"kind": "DistillationJob", "metadata": {"name": name}, "spec": body}
    )


def text_of(prompt: Prompt) -> str:
    return prompt.text if prompt.text is not None else prompt.messages[-1][1]


class ScriptedTeacher:
    """A Generator answering by `rule`; records every prompt it was asked."""

    def __init__(self, rule: Rule) -> None:
        self.usage = UsageCounter()
        self.rule = rule
        self.prompts: list[Prompt] = []
        self.rounds: dict[str, int] = defaultdict(int)
        self.closed = False

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        self.prompts.extend(prompts)
        for index in reversed(range(len(prompts))):
            text = text_of(prompts[index])
            samples = tuple(self.rule(text, self.rounds[text], sampling.samples_per_question))
            self.rounds[text] += 1
            self.usage.requests += 1
            self.usage.completion_tokens += sum(s.completion_tokens for s in samples)
            yield Completion(index=index, samples=samples)

    def close(self) -> None:
        self.closed = True


def r1(reasoning: str, answer: str, tokens: int = 10, finish: str = "stop") -> Sample:
    return Sample(text=f"<think>\n{reasoning}\n</think>\n\n{answer}", finish_reason=finish,  # type: ignore[arg-type]
                  completion_tokens=tokens, prompt_tokens=5, latency_s=0.01)  # fmt: skip


def sum_rule(text: str, round_number: int, n: int) -> list[Sample]:
    """Right on the first round for even A, on the second round for odd A (wrong by one before)."""
    a, b = (int(x) for x in text.split("What is ")[1].split("?")[0].split(" + "))
    right = a % 2 == 0 or round_number >= 1
    value = a + b if right else a + b + 1
    return [r1(f"{a} plus {b}", f"\\boxed{{{value}}}", tokens=10 + i) for i in range(n)]
