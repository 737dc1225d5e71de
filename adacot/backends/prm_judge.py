"""An LLM as process judge: `JudgePRM` asks a model behind any `Generator` (the OpenAI-compatible HTTP
backend in production) to rate every step of a trace.

Callers: `make_step_scorer` for `grader.prm.kind: llmJudge`; unit tests drive it with a scripted
Generator. The judge sees the question and the numbered steps and is asked for exactly one line per
step, "Step k: <score>", with an integer score from 0 (wrong) to 10 (certainly right); the score / 10 is
the step score. `parse_judge_reply` is lenient about what surrounds that: an R1-style "<think>…</think>"
block, markdown bold, "8/10", "score: 8", decimals, a rationale before the list, a list restated (the
last rating of a step wins), or a bare list of one number per line.

A reply that does not rate every step with a number in [0, 10] (or a request that failed for good) is
unparseable: the trace is asked once more, and if the second reply is no better the trace is reported
unscored (StepScores with no scores and `error` saying why), never given invented scores.

Truncation: the judge's tokenizer is not at hand, so length is estimated at CHARS_PER_TOKEN characters
per token (close for English and LaTeX; CJK text is undercounted). Steps whose text would push the
prompt past `max_tokens` are dropped (truncated=True), as with the weight-based PRMs. Batching: each
`generate` call gets `batch_size` traces; the Generator decides how many requests run at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from adacot.api.generation import SamplingSpec
from adacot.backends.base import Generator, PrmUsage, Prompt, StepScores

CHARS_PER_TOKEN = 4
MAX_SCORE = 10.0
JUDGE_SYSTEM = (
    "You are a meticulous grader of step-by-step math solutions. You check every step for errors in "
    "calculation, logic and relevance, and you judge each step given the steps before it."
)
JUDGE_CODE_SYSTEM = (
    "You are a meticulous grader of step-by-step solutions to programming problems. You check every "
    "step for errors in logic, algorithm, edge cases and code, and you judge each step given the steps "
    "before it."
)
_INSTRUCTION = (
    "Rate every step from 0 (wrong or useless) to 10 (certainly correct). Reply with exactly one line "
    "per step, in order, and nothing else:\nStep 1: <score>\nStep 2: <score>\n..."
)
_RATED_STEP = re.compile(
    r"step\s*#?\s*(\d+)\s*\**\s*[:=\-–]?\s*\**\s*(?:score\s*[:=]?\s*)?(\d+(?:\.\d+)?)\s*(?:/\s*10\b)?",
    re.IGNORECASE,
)
_BARE_SCORE = re.compile(r"^\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*\**\s*$")
_REPLY_EXCERPT = 200


def judge_prompt(question: str, steps: Sequence[str], system: str | None = JUDGE_SYSTEM) -> Prompt:
    """The chat prompt that asks the judge to rate `steps` (`system`: the judge's persona, or None)."""
    numbered = "\n\n".join(f"Step {k}: {s}" for k, s in enumerate(steps, start=1))
    user = f"Question:\n{question}\n\nSolution, in {len(steps)} steps:\n\n{numbered}\n\n{_INSTRUCTION}"
    return Prompt.chat(user, system=system)


def parse_judge_reply(text: str, steps: int) -> list[float] | None:
    """Scores in [0, 1] for steps 1..`steps`, or None when the reply does not rate each of them."""
    answer = text.rsplit("</think>", 1)[-1]
    rated: dict[int, float] = {}
    for match in _RATED_STEP.finditer(answer):
        rated[int(match.group(1))] = float(match.group(2))  # a restated list: the last rating wins
    values = [rated.get(k) for k in range(1, steps + 1)]
    if any(v is None for v in values):
        bare = [m.group(1) for line in answer.splitlines() if (m := _BARE_SCORE.match(line))]
        values = [float(v) for v in bare] if len(bare) == steps else values
    if steps == 0 or any(v is None or v > MAX_SCORE for v in values):
        return None
    return [float(v) / MAX_SCORE for v in values if v is not None]


class JudgePRM:
    """StepScorer over a Generator acting as judge. Takes ownership of the generator (closes it)."""

    def __init__(
        self,
        generator: Generator,
        sampling: SamplingSpec,
        *,
        batch_size: int = 8,
        max_tokens: int = 8192,
        system: str | None = JUDGE_SYSTEM,
    ) -> None:
        if batch_size < 1 or max_tokens < 1:
            raise ValueError(
                f"judge PRM: batch_size and max_tokens must be >= 1 (got {batch_size}, {max_tokens})"
            )
        self.generator = generator
        # One rating per trace: more samples would only multiply cost (the first parseable reply is used).
        self.sampling = sampling.model_copy(update={"samples_per_question": 1})
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.system = system
        self.usage = PrmUsage()

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[StepScores]:
        fitted = [self._fit(question, steps) for question, steps in items]
        replies = self._ask([i for i, (_, kept) in enumerate(fitted) if kept], fitted)
        retry = [i for i, r in replies.items() if isinstance(r, str)]
        self.usage.retries += len(retry)
        replies.update(self._ask(retry, fitted))
        return [self._record(items[i][1], fitted[i][1], replies.get(i)) for i in range(len(items))]

    def _fit(self, question: str, steps: Sequence[str]) -> tuple[str, list[str]]:
        """The question and the steps that fit in max_tokens (estimated)."""
        budget = self.max_tokens * CHARS_PER_TOKEN - len(judge_prompt(question, []).messages[-1][1])
        budget -= len(self.system or "")
        kept: list[str] = []
        for step in steps:
            budget -= len(step) + len(f"Step {len(kept) + 1}: \n\n")
            if budget < 0:
                break
            kept.append(step)
        return question, kept

    def _ask(self, indices: list[int], fitted: list[tuple[str, list[str]]]) -> dict[int, list[float] | str]:
        """Scores per trace index, or the reason (a string) its reply was unusable."""
        out: dict[int, list[float] | str] = {}
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start : start + self.batch_size]
            prompts = [judge_prompt(*fitted[i], system=self.system) for i in chunk]
            for completion in self.generator.generate(prompts, self.sampling):
                index = chunk[completion.index]
                out[index] = _read(completion.samples[0].text, completion.samples[0].error, fitted[index][1])
        return out

    def _record(self, steps: Sequence[str], kept: list[str], reply: list[float] | str | None) -> StepScores:
        self.usage.traces += 1
        truncated = len(kept) < len(steps)
        self.usage.truncated_traces += truncated
        self.usage.steps_dropped += len(steps) - len(kept)
        if isinstance(reply, str):
            self.usage.unscored_traces += 1
            return StepScores((), truncated=truncated, error=reply)
        scores = tuple(reply or ())
        self.usage.steps_scored += len(scores)
        return StepScores(scores, truncated=truncated)

    def close(self) -> None:
        self.generator.close()


def _read(text: str, error: str | None, steps: list[str]) -> list[float] | str:
    if error is not None:
        return f"judge request failed: {error}"
    scores = parse_judge_reply(text, len(steps))
    if scores is None:
        return f"judge reply unparseable (expected {len(steps)} ratings): {text[:_REPLY_EXCERPT]!r}"
    return scores
