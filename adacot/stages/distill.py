"""The distillation stage's logic: sampled bank entries → teacher samples → R1 format → verdicts → kept CoT.

Callers: adacot.pipelines.distillation_job (shards, resume, files) and tests. Functions over rows; the
teacher comes in through the `Generator` protocol, the Result-Verifiers through `Verifiers`.

Per question (`distill_chunk`: a chunk at a time, round by round, for batch engines; `distill_stream`:
continuous, for a teacher that takes prompts as they come - a question's next round is asked as soon as
its previous one is verified, and its record is yielded the moment it is final):
1. The prompt: the question plus the per-task answer-format instruction (adacot.stages.prompts: math
   "\\boxed{}", code one ```python block), with the teacher's system message when set.
2. Rounds: each round asks the teacher for `sampling.samplesPerQuestion` samples (seed derived from the
   question id and the round, so shards and restarts ask the same); questions with a kept sample leave;
   at most `teacher.maxAttempts` rounds.
3. Each sample is screened before verification, in this order: a failed request (`generation_error`),
   finish reason length (`truncated`: never kept), R1 assembly (adacot.stages.r1: `no_reasoning`,
   `unclosed_think`, `empty_answer`), `filter.maxTokens` on the sample's completion tokens (`too_long`).
   The rest is verified on its answer part (math: final-answer equivalence; code: sandboxed tests).
4. Keep (`teacher.keep`) among the correct samples of the round that first has one: `first` (lowest
   sample index), `shortest` (fewest completion tokens, then text length), `all`.

Every sample gets an outcome (`kept`, `correct_not_kept`, `wrong:<verdict reason>`, `undecided:<verdict
reason>` or a screening reason above), so each question's record says why nothing was kept.

Both give the same records (prompts, seeds and verdicts depend only on the question and the round);
`distill_stream` also stores each question's teacher usage in its record (`DistilledQuestion.usage`).

Limits: `filter.maxTokens` counts the teacher's tokens (the student's tokenizer may count differently);
a question keeps samples from one round only (the round that verified first).
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from adacot.api.common import TaskType
from adacot.api.distillation_job import FilterSpec, TeacherSpec
from adacot.api.generation import VerificationSpec
from adacot.artifacts.manifest import Counters
from adacot.artifacts.rows import Attempt, BankEntry, CotTrace, DistilledQuestion, Verdict
from adacot.backends.base import Completion, Generator, Prompt, Sample, StreamingGenerator
from adacot.stages.decontaminate import BenchmarkIndex, Contamination
from adacot.stages.prompts import derive_seed, prompt_for_text, user_text
from adacot.stages.r1 import R1Result, assemble
from adacot.verify.factory import ResponseVerifier, make_verifier

KEPT, NOT_KEPT = "kept", "correct_not_kept"


@dataclass
class DistillStats(Counters):
    """Counters for the manifest, accumulated over the chunks a process distils."""

    questions: int = 0
    accepted: int = 0
    samples: int = 0
    kept_samples: int = 0
    rounds: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, record: DistilledQuestion) -> None:
        self.questions += 1
        self.accepted += int(record.accepted)
        self.samples += len(record.attempts)
        self.kept_samples += len(record.kept)
        self.rounds += record.rounds
        self.outcomes.update(record.outcomes)


class Verifiers:
    """One Result-Verifier per task, built on first use (a math-only bank never starts the sandbox)."""

    def __init__(self, spec: VerificationSpec, made: dict[TaskType, ResponseVerifier] | None = None) -> None:
        self._spec = spec
        self._made: dict[TaskType, ResponseVerifier] = dict(made or {})

    def __call__(self, task: TaskType) -> ResponseVerifier:
        if task not in self._made:
            self._made[task] = make_verifier(task, self._spec)
        return self._made[task]

    def close(self) -> None:
        for verifier in self._made.values():
            verifier.close()


def decontaminate(
    entries: Sequence[BankEntry], index: BenchmarkIndex | None
) -> tuple[list[BankEntry], list[Contamination]]:
    """The entries that overlap no benchmark question, and a report of the removed ones."""
    if index is None:
        return list(entries), []
    clean, removed = [], []
    for entry in entries:
        hit = index.check(entry.question)
        if hit is None:
            clean.append(entry)
        else:
            removed.append(hit)
    return clean, removed


# The teacher's request is built like the grading stage's (one definition of prompt shape and seeds).
teacher_prompt = prompt_for_text


# ------------------------------------------------------------------------------------------ one sample


@dataclass
class _Sampled:
    """A sample in flight: its attempt record, its R1 assembly and (once decided) its outcome."""

    attempt: Attempt
    r1: R1Result
    outcome: str | None = None


def _screen(sample: Sample, r1: R1Result, filters: FilterSpec) -> str | None:
    """Why a sample is dropped before verification, or None when it goes to the verifier."""
    if sample.finish_reason == "error":
        return "generation_error"
    if sample.finish_reason == "length":
        return "truncated"
    if r1.reason is not None:
        return r1.reason
    if filters.max_tokens is not None and sample.completion_tokens > filters.max_tokens:
        return "too_long"
    return None


def _sampled(question_id: str, number: int, sample: Sample, filters: FilterSpec) -> _Sampled:
    r1 = assemble(sample.text, sample.reasoning, require_reasoning=filters.require_reasoning)
    attempt = Attempt(
        question_id=question_id,
        sample=number,
        text=sample.text,
        reasoning=sample.reasoning,
        finish_reason=sample.finish_reason,
        prompt_tokens=sample.prompt_tokens,
        completion_tokens=sample.completion_tokens,
        latency_s=sample.latency_s,
    )
    return _Sampled(attempt, r1, _screen(sample, r1, filters))


def _verdict_outcome(verdict: Verdict) -> str | None:
    if verdict.correct is True:
        return None  # correct: kept or not by the keep policy
    prefix = "wrong" if verdict.correct is False else "undecided"
    return f"{prefix}:{verdict.reason}"


# ------------------------------------------------------------------------------------------ questions


@dataclass
class _Question:
    entry: BankEntry
    prompt: str
    sampled: list[_Sampled] = field(default_factory=list)
    rounds: int = 0
    done: bool = False
    usage: Counter[str] | None = None
    """The teacher's calls for this question, over its rounds (streaming only)."""


def _pick(correct: list[_Sampled], keep: str) -> list[_Sampled]:
    if keep == "all":
        return correct
    if keep == "shortest":
        return [min(correct, key=lambda s: (s.attempt.completion_tokens or 0, len(s.r1.text or "")))]
    return correct[:1]


def _trace(item: _Question, chosen: _Sampled) -> CotTrace:
    attempt, verdict = chosen.attempt, chosen.attempt.verdict
    assert chosen.r1.text is not None and verdict is not None  # only verified, assembled samples get here
    return CotTrace(
        question_id=item.entry.question.id,
        level=item.entry.level,
        source=item.entry.question.source,
        prompt=item.prompt,
        reasoning=chosen.r1.reasoning,
        answer=chosen.r1.answer,
        text=chosen.r1.text,
        verdict=verdict,
        attempt=attempt.sample + 1,
        prompt_tokens=attempt.prompt_tokens,
        completion_tokens=attempt.completion_tokens,
        latency_s=attempt.latency_s,
        finish_reason=attempt.finish_reason,
    )


def _decide(item: _Question, fresh: list[_Sampled], keep: str) -> None:
    """Outcomes of one round's verified samples; the question is done when one is correct."""
    correct = [s for s in fresh if s.outcome is None]
    chosen = {id(s) for s in _pick(correct, keep)} if correct else set()
    for s in correct:
        s.outcome = KEPT if id(s) in chosen else NOT_KEPT
    item.done = bool(correct)


def _verify_round(fresh: list[tuple[_Question, _Sampled]], verifiers: Verifiers) -> None:
    """Verify the screened-in samples of a round, task by task, in one batch each."""
    by_task: dict[TaskType, list[tuple[_Question, _Sampled]]] = {}
    for item, s in fresh:
        if s.outcome is None:
            by_task.setdefault(item.entry.question.task, []).append((item, s))
    for task, todo in by_task.items():
        pairs = [(s.r1.answer, _reference(item)) for item, s in todo]
        for (_, s), verdict in zip(todo, verifiers(task).verify_many(pairs), strict=True):
            s.attempt = s.attempt.model_copy(update={"verdict": verdict})
            s.outcome = _verdict_outcome(verdict)


def _reference(item: _Question) -> Any:
    question = item.entry.question
    return question.answer if question.task is TaskType.math else question.tests


def _run_round(
    active: list[_Question],
    teacher: TeacherSpec,
    filters: FilterSpec,
    generator: Generator,
    verifiers: Verifiers,
) -> None:
    round_number = active[0].rounds
    prompts = [
        teacher_prompt(
            q.prompt, teacher.prompt, derive_seed(teacher.sampling.seed, q.entry.question.id, round_number)
        )
        for q in active
    ]
    fresh: dict[int, list[_Sampled]] = {}
    for completion in generator.generate(prompts, teacher.sampling):
        item = active[completion.index]
        if completion.index in fresh:
            raise RuntimeError(f"teacher yielded prompt {completion.index} ({item.entry.question.id}) twice")
        start = len(item.sampled)
        fresh[completion.index] = [
            _sampled(item.entry.question.id, start + i, s, filters) for i, s in enumerate(completion.samples)
        ]
    if len(fresh) != len(active):
        raise RuntimeError(f"teacher returned {len(fresh)} completions for {len(active)} prompts")
    _verify_round([(active[i], s) for i, batch in fresh.items() for s in batch], verifiers)
    for index, item in enumerate(active):
        item.sampled.extend(fresh[index])
        item.rounds += 1
        _decide(item, fresh[index], teacher.keep)


def _record(item: _Question) -> DistilledQuestion:
    entry = item.entry
    return DistilledQuestion(
        question_id=entry.question.id,
        level=entry.level,
        source=entry.question.source,
        origin=entry.origin,
        prompt=item.prompt,
        rounds=item.rounds,
        attempts=[s.attempt for s in item.sampled],
        outcomes=[s.outcome or "unverified" for s in item.sampled],
        kept=[_trace(item, s) for s in item.sampled if s.outcome == KEPT],
        usage=dict(sorted(item.usage.items())) if item.usage is not None else None,
    )


def distill_chunk(
    entries: Sequence[BankEntry],
    teacher: TeacherSpec,
    filters: FilterSpec,
    generator: Generator,
    verifiers: Verifiers,
    stats: DistillStats | None = None,
) -> list[DistilledQuestion]:
    """Distil one chunk of questions (see the module docstring); records in input order."""
    items = [_Question(e, user_text(e.question, teacher.prompt)) for e in entries]
    active = list(items)
    while active and active[0].rounds < teacher.max_attempts:
        _run_round(active, teacher, filters, generator, verifiers)
        active = [q for q in active if not q.done]
    records = [_record(q) for q in items]
    if stats is not None:
        for record in records:
            stats.add(record)
    return records


# ------------------------------------------------------------------------------------------ streaming


class _Feed:
    """The prompts of a stream, added while it runs; iterating blocks until the next one or `close()`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Prompt | None] = queue.Queue()

    def put(self, prompt: Prompt) -> None:
        self._queue.put(prompt)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[Prompt]:
        while (prompt := self._queue.get()) is not None:
            yield prompt


def _round_prompt(item: _Question, teacher: TeacherSpec) -> Prompt:
    seed = derive_seed(teacher.sampling.seed, item.entry.question.id, item.rounds)
    return teacher_prompt(item.prompt, teacher.prompt, seed)


def _arrived(
    sent: list[_Question], answered: set[int], ready: list[Completion], filters: FilterSpec
) -> list[tuple[_Question, list[_Sampled]]]:
    """The questions answered in one ready batch, each with its screened samples and usage counted."""
    arrived = []
    for completion in ready:
        item = sent[completion.index]
        if completion.index in answered:
            raise RuntimeError(f"teacher yielded prompt {completion.index} ({item.entry.question.id}) twice")
        answered.add(completion.index)
        start = len(item.sampled)
        question_id = item.entry.question.id
        fresh = [_sampled(question_id, start + i, s, filters) for i, s in enumerate(completion.samples)]
        if completion.usage is not None:
            counts = completion.usage.as_dict()
            item.usage = item.usage if item.usage is not None else Counter()
            item.usage.update({k: v for k, v in counts.items() if isinstance(v, int)})
        arrived.append((item, fresh))
    return arrived


def distill_stream(
    entries: Sequence[BankEntry],
    teacher: TeacherSpec,
    filters: FilterSpec,
    generator: StreamingGenerator,
    verifiers: Verifiers,
    stats: DistillStats | None = None,
) -> Iterator[DistilledQuestion]:
    """Distil with continuous dispatch (see the module docstring); records in the order they finish.

    Every question's round-0 prompt is queued at once; the teacher keeps `concurrency` requests in
    flight; each batch of ready answers is verified together, and a question without a kept sample is
    queued for its next round right away. Closing the iterator early abandons what is in flight.
    """
    feed, sent, answered = _Feed(), [], set[int]()  # sent[i]: the question of prompt i (Completion.index)
    for item in (_Question(e, user_text(e.question, teacher.prompt)) for e in entries):
        sent.append(item)
        feed.put(_round_prompt(item, teacher))
    open_questions = len(sent)
    if not open_questions:
        return
    try:
        for ready in generator.stream(feed, teacher.sampling):
            arrived = _arrived(sent, answered, ready, filters)
            _verify_round([(item, s) for item, fresh in arrived for s in fresh], verifiers)
            for item, fresh in arrived:
                item.sampled.extend(fresh)
                item.rounds += 1
                _decide(item, fresh, teacher.keep)
                if item.done or item.rounds >= teacher.max_attempts:
                    open_questions -= 1
                    record = _record(item)
                    if stats is not None:
                        stats.add(record)
                    yield record
                else:
                    sent.append(item)
                    feed.put(_round_prompt(item, teacher))
            if not open_questions:
                feed.close()
    finally:
        feed.close()  # wakes the generator's taker thread when the caller stops early


def traces_of(records: Iterable[DistilledQuestion]) -> Iterable[CotTrace]:
    """The kept CoT of records, in record order."""
    for record in records:
        yield from record.kept
