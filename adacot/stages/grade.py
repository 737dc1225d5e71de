"""The grading stage's logic: questions → the model's attempts → verdicts → solved / PRM score → records.

Callers: adacot.pipelines.grading_run (shards, resume, files) and tests. Functions over rows; the engines
come in through the `Generator` and `StepScorer` protocols and a verifier with `verify_many`.

Per question (phase 1, `grade_chunk` a chunk at a time; `grade_stream` with a generator that takes
prompts as they come: every prompt queued at once, each batch of ready answers verified, scored and
yielded as records while the rest are still in flight, so no request waits for a chunk's slowest; while
the PRM scores one batch more answers arrive, so its batches grow when it is the slower part):
1. k = sampling.samplesPerQuestion attempts: generated from the prompt (adacot.stages.prompts), or taken from
   pre-generated responses (ResponsesSpec, finish reasons when the file has them). A sample whose
   request failed for good gets the verdict `generation_error` (undecided) instead of being verified.
2. Every attempt is verified (math: final-answer equivalence; code: sandboxed tests).
3. Attempts cut off by max tokens (finish reason length) are counted on the record (`truncated`);
   under grader.truncated drop they leave the question's samples here.
4. No decided verdict at all → the question is *not graded*: `level` None and `reason` says why
   ("unverifiable reference: gold_unparseable" / "bad_tests", "undecided: ..." for timeouts and
   failed generations, "no attempts: ..."). The summary counts these; they never get a guessed level.
5. pass rate (undecided samples count as not correct, adacot.stages.levels) and the solved rule →
   solved questions are level 0. Under grader.truncated hardest (the default) an unsolved question
   with a cut-off attempt is level 5 at once, unscored.
6. Other unsolved questions get a score in [0, 1]: method prm → each wrong sample is split into steps,
   scored by the PRM, steps aggregated (grader.prm.aggregation), then samples aggregated
   (grader.prm.sampleAggregation); code without a PRM → the share of tests passed, aggregated the same
   way (mean when no PRM block); method passRate → `pass_rate_score`. A question whose wrong samples
   give no score (no step scored) is not graded either, with that reason. A trace longer than the
   PRM's context is flagged `prm_truncated` (attempt and question) and scored on the steps that fit,
   or left unscored under grader.prm.onOverflow skip.

Levels of unsolved questions need every score of the run when `levels.mode` is quantiles, and a shard
sees only its own questions. So grading is two-phase: phase 1 writes records whose unsolved questions
carry `score` and `reason = PENDING_LEVEL` (no level); phase 2 (`assign_levels`, run by the pipeline at
merge time over all shards) turns every pending record into a levelled one. Bins mode goes through the
same path, so the records of both modes are made the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from adacot.api.common import TaskType
from adacot.api.grading_run import GradingRunSpec, LevelMapping
from adacot.artifacts.manifest import Counters
from adacot.artifacts.rows import Attempt, GradedQuestion, Question, Verdict
from adacot.backends.base import Completion, Generator, Prompt, Sample, StepScorer, StreamingGenerator
from adacot.stages import levels
from adacot.stages.prompts import build_prompt, derive_seed
from adacot.stages.steps import split_steps
from adacot.verify.factory import ResponseVerifier

PENDING_LEVEL = "level pending: assigned when all shards are merged"
ALL_CUT_OFF = "no attempts: every sample was cut off by max tokens (grader.truncated drop)"
_UNVERIFIABLE_REFERENCE = ("gold_unparseable", "bad_tests")
HARDEST_LEVEL = 5


@dataclass(frozen=True)
class Response:
    """A pre-generated answer and, when the file records it, why generation stopped."""

    text: str
    finish_reason: str | None = None


ResponseLike: TypeAlias = str | Response


@dataclass
class GradeStats(Counters):
    """Counters for the manifest, accumulated over the chunks a process grades."""

    questions: int = 0
    attempts: int = 0
    generation_errors: int = 0
    truncated: int = 0
    """Attempts cut by max tokens (finish reason length)."""
    prm_traces: int = 0
    prm_truncated: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)


# ------------------------------------------------------------------------------------------ attempts


def _attempt(question_id: str, index: int, sample: Sample) -> Attempt:
    return Attempt(
        question_id=question_id,
        sample=index,
        text=sample.text,
        reasoning=sample.reasoning,
        finish_reason=sample.finish_reason,
        prompt_tokens=sample.prompt_tokens,
        completion_tokens=sample.completion_tokens,
        latency_s=sample.latency_s,
        verdict=_error_verdict(sample) if sample.finish_reason == "error" else None,
    )


def _error_verdict(sample: Sample) -> Verdict:
    return Verdict(correct=None, reason="generation_error", detail=(sample.error or "request failed")[:300])


def generate_attempts(
    questions: Sequence[Question], generator: Generator, spec: GradingRunSpec
) -> dict[str, list[Attempt]]:
    """k attempts per question from the generator (completions arrive in any order)."""
    seed = spec.sampling.seed
    prompts: list[Prompt] = [build_prompt(q, spec.prompt, derive_seed(seed, q.id)) for q in questions]
    found: dict[str, list[Attempt]] = {}
    for completion in generator.generate(prompts, spec.sampling):
        question = questions[completion.index]
        if question.id in found:
            raise RuntimeError(f"generator yielded prompt {completion.index} ({question.id}) twice")
        found[question.id] = [_attempt(question.id, i, s) for i, s in enumerate(completion.samples)]
    missing = [q.id for q in questions if q.id not in found]
    if missing:
        raise RuntimeError(f"generator returned no completion for {len(missing)} prompts, e.g. {missing[0]}")
    return found


def attempts_from_responses(question: Question, responses: Sequence[ResponseLike]) -> list[Attempt]:
    """Attempts from pre-generated responses (ResponsesSpec); token counts unknown, finish reasons
    unknown for plain strings."""
    found = [r if isinstance(r, Response) else Response(r) for r in responses]
    return [
        Attempt(question_id=question.id, sample=i, text=r.text, finish_reason=r.finish_reason)
        for i, r in enumerate(found)
    ]


# ------------------------------------------------------------------------------------------ verdicts


def verify_attempts(
    questions: Sequence[Question], attempts: Mapping[str, list[Attempt]], verifier: ResponseVerifier
) -> dict[str, list[Attempt]]:
    """Attempts with their verdicts (attempts that already carry one, failed generations, are kept)."""
    todo = [(q, a) for q in questions for a in attempts[q.id] if a.verdict is None]
    pairs = ((a.text, q.answer if q.task is TaskType.math else q.tests) for q, a in todo)
    verdicts = {id(a): v for (_, a), v in zip(todo, verifier.verify_many(pairs), strict=True)}
    return {
        q.id: [
            a.model_copy(update={"verdict": verdicts[id(a)]}) if id(a) in verdicts else a
            for a in attempts[q.id]
        ]
        for q in questions
    }


def _ungradable_reason(attempts: Sequence[Attempt]) -> str | None:
    """Why no verdict of a question is decided, or None when at least one is."""
    verdicts = [a.verdict for a in attempts]
    if not attempts:
        return "no attempts: no response for this question"
    if any(v is not None and v.correct is not None for v in verdicts):
        return None
    reasons = Counter(v.reason if v is not None else "unverified" for v in verdicts)
    reference = next((r for r in _UNVERIFIABLE_REFERENCE if r in reasons), None)
    if reference is not None:
        detail = next((v.detail for v in verdicts if v is not None and v.reason == reference), None)
        return f"unverifiable reference: {reference}" + (f": {detail}" if detail else "")
    listing = ", ".join(f"{r} x{n}" for r, n in sorted(reasons.items()))
    return f"undecided: no sample could be verified ({listing})"


# ------------------------------------------------------------------------------------------ scores


def _trace(attempt: Attempt) -> str:
    return f"{attempt.reasoning}\n\n{attempt.text}" if attempt.reasoning else attempt.text


def score_with_prm(
    items: Sequence[tuple[Question, Attempt]], scorer: StepScorer, spec: GradingRunSpec, stats: GradeStats
) -> dict[int, Attempt]:
    """Step scores and the aggregated trace score of each attempt, keyed by id(attempt)."""
    prm = spec.grader.prm
    assert prm is not None
    steps = [split_steps(_trace(a), prm.step_split, prm.step_tag) for _, a in items]
    batch = [(q.problem, s) for (q, _), s in zip(items, steps, strict=True)]
    scored = scorer.score(batch) if batch else []
    if len(scored) != len(batch):
        raise RuntimeError(f"step scorer returned {len(scored)} results for {len(batch)} traces")
    stats.prm_traces += len(batch)
    stats.prm_truncated += sum(1 for s in scored if s.truncated)
    skip = prm.on_overflow == "skip"
    return {
        id(a): a.model_copy(
            update={
                "step_scores": list(s.scores),
                "score": None if skip and s.truncated else levels.aggregate_steps(s.scores, prm.aggregation),
                "prm_truncated": s.truncated,
            }
        )
        for (_, a), s in zip(items, scored, strict=True)
    }


def _test_share(attempt: Attempt) -> Attempt:
    verdict = attempt.verdict
    share = verdict.score if verdict is not None else None
    return attempt.model_copy(update={"score": share})


# ------------------------------------------------------------------------------------------ records


@dataclass
class _Pending:
    question: Question
    attempts: list[Attempt]
    rate: float
    cut: int


def _solved(spec: GradingRunSpec, attempts: Sequence[Attempt]) -> bool:
    grader = spec.grader
    return levels.is_solved([a.verdict for a in attempts], grader.solved_rule, grader.solved_threshold)


def _unsolved_record(item: _Pending, spec: GradingRunSpec) -> GradedQuestion:
    grader = spec.grader
    how = grader.prm.sample_aggregation if grader.prm is not None else "mean"
    score: float | None
    if grader.method == "passRate":
        score = levels.pass_rate_score(item.rate, grader.solved_rule, grader.solved_threshold)
    else:
        score = levels.aggregate_samples(
            [a.score for a in item.attempts if a.verdict and a.verdict.correct is False], how
        )
    reason = PENDING_LEVEL if score is not None else "no score: no step of a wrong sample could be scored"
    return GradedQuestion(
        question=item.question,
        attempts=item.attempts,
        pass_rate=item.rate,
        solved=False,
        score=score,
        reason=reason,
        truncated=item.cut,
        prm_truncated=_prm_truncated(item.attempts),
    )


def _prm_truncated(attempts: Sequence[Attempt]) -> bool | None:
    """Whether a PRM-scored trace of the question overflowed the PRM's context; None if none was scored."""
    flags = [a.prm_truncated for a in attempts if a.prm_truncated is not None]
    return any(flags) if flags else None


def _score_unsolved(
    pending: list[_Pending], spec: GradingRunSpec, scorer: Callable[[], StepScorer] | None, stats: GradeStats
) -> None:
    """Attach per-attempt scores to the wrong attempts of unsolved questions (in place)."""
    if spec.grader.method == "passRate" or not pending:
        return
    wrong = [(p.question, a) for p in pending for a in p.attempts if a.verdict and a.verdict.correct is False]
    if spec.grader.prm is not None:
        if scorer is None:
            raise RuntimeError("grader.prm is set but no step scorer was given")
        updated = score_with_prm(wrong, scorer(), spec, stats)
    elif spec.questions.task is TaskType.code:
        updated = {id(a): _test_share(a) for _, a in wrong}
    else:
        raise RuntimeError("grader.method prm on math questions needs grader.prm")
    for item in pending:
        item.attempts = [updated.get(id(a), a) for a in item.attempts]


def grade_attempts(
    questions: Sequence[Question],
    attempts: Mapping[str, list[Attempt]],
    spec: GradingRunSpec,
    *,
    scorer: Callable[[], StepScorer] | None = None,
    stats: GradeStats | None = None,
) -> list[GradedQuestion]:
    """Phase-1 records of verified attempts, in question order (see the module docstring).

    `scorer` is a factory so the PRM is loaded only when a chunk has an unsolved question.
    """
    stats = stats if stats is not None else GradeStats()
    records: dict[str, GradedQuestion] = {}
    pending: list[_Pending] = []
    for question in questions:
        _count(stats, attempts[question.id])
        outcome = _phase_one(question, attempts[question.id], spec)
        if isinstance(outcome, _Pending):
            pending.append(outcome)
        else:
            records[question.id] = outcome
    _score_unsolved(pending, spec, scorer, stats)
    for item in pending:
        records[item.question.id] = _unsolved_record(item, spec)
    return [records[q.id] for q in questions]


def _phase_one(
    question: Question, attempts: Sequence[Attempt], spec: GradingRunSpec
) -> GradedQuestion | _Pending:
    """The record of an ungradable, solved or cut-off-hardest question; a _Pending one to be scored."""
    cut = sum(1 for a in attempts if a.truncated)
    mine = _kept(attempts, spec)
    reason = ALL_CUT_OFF if cut and not mine else _ungradable_reason(mine)
    if reason is not None:
        return GradedQuestion(question=question, attempts=mine, reason=reason, truncated=cut)
    rate = levels.pass_rate([a.verdict for a in mine])
    if _solved(spec, mine):
        return GradedQuestion(
            question=question, attempts=mine, pass_rate=rate, solved=True, level=0, truncated=cut
        )
    if cut and spec.grader.truncated == "hardest":
        return GradedQuestion(
            question=question, attempts=mine, pass_rate=rate, solved=False, level=HARDEST_LEVEL, truncated=cut
        )
    return _Pending(question, mine, rate, cut)


def _kept(attempts: Sequence[Attempt], spec: GradingRunSpec) -> list[Attempt]:
    """The attempts that count as the question's samples: all, or under grader.truncated drop the
    finished ones."""
    if spec.grader.truncated == "drop":
        return [a for a in attempts if not a.truncated]
    return list(attempts)


def _count(stats: GradeStats, attempts: Sequence[Attempt]) -> None:
    stats.questions += 1
    stats.attempts += len(attempts)
    stats.generation_errors += sum(1 for a in attempts if a.finish_reason == "error")
    stats.truncated += sum(1 for a in attempts if a.finish_reason == "length")
    stats.verdicts.update(a.verdict.reason for a in attempts if a.verdict is not None)


def grade_chunk(
    questions: Sequence[Question],
    spec: GradingRunSpec,
    verifier: ResponseVerifier,
    *,
    generator: Generator | None = None,
    responses: Mapping[str, Sequence[ResponseLike]] | None = None,
    scorer: Callable[[], StepScorer] | None = None,
    stats: GradeStats | None = None,
) -> list[GradedQuestion]:
    """Generate (or take the given responses), verify and grade one chunk of questions: phase 1."""
    if responses is not None:
        raw = {q.id: attempts_from_responses(q, responses.get(q.id, ())) for q in questions}
    elif generator is not None:
        raw = generate_attempts(questions, generator, spec)
    else:
        raise ValueError("grade_chunk needs a generator or pre-generated responses")
    verified = verify_attempts(questions, raw, verifier)
    return grade_attempts(questions, verified, spec, scorer=scorer, stats=stats)


def _usage(completion: Completion) -> dict[str, int] | None:
    if completion.usage is None:
        return None
    return {k: v for k, v in sorted(completion.usage.as_dict().items()) if isinstance(v, int)}


def grade_stream(
    questions: Sequence[Question],
    spec: GradingRunSpec,
    verifier: ResponseVerifier,
    generator: StreamingGenerator,
    *,
    scorer: Callable[[], StepScorer] | None = None,
    stats: GradeStats | None = None,
) -> Iterator[GradedQuestion]:
    """Phase 1 with continuous dispatch (see the module docstring); records in the order they finish,
    each with its question's generation usage (`GradedQuestion.usage`)."""
    seed = spec.sampling.seed
    prompts = [build_prompt(q, spec.prompt, derive_seed(seed, q.id)) for q in questions]
    answered: set[int] = set()
    for ready in generator.stream(prompts, spec.sampling):
        batch, raw, usage = [], {}, {}
        for completion in ready:
            question = questions[completion.index]
            if completion.index in answered:
                raise RuntimeError(f"generator yielded prompt {completion.index} ({question.id}) twice")
            answered.add(completion.index)
            batch.append(question)
            raw[question.id] = [_attempt(question.id, i, s) for i, s in enumerate(completion.samples)]
            usage[question.id] = _usage(completion)
        verified = verify_attempts(batch, raw, verifier)
        for record in grade_attempts(batch, verified, spec, scorer=scorer, stats=stats):
            yield record.model_copy(update={"usage": usage[record.key]})
    if len(answered) != len(questions):
        raise RuntimeError(f"generator answered {len(answered)} of {len(questions)} prompts")


# ------------------------------------------------------------------------------------------ phase 2


def level_table(pending: Iterable[tuple[str, float]], mapping: LevelMapping) -> dict[str, int]:
    """Levels 1..5 of the pending (key, score) pairs of the whole run (bins or this run's quantiles);
    quantile ties are decided by value, so the result does not depend on shard order."""
    keys, scores = [], []
    for key, score in pending:
        keys.append(key)
        scores.append(score)
    return dict(zip(keys, levels.levels_for(scores, mapping), strict=True))


def assign_level(record: GradedQuestion, table: Mapping[str, int]) -> GradedQuestion:
    """Phase 2 for one record: a pending record gets its level; every other record is returned as is."""
    if record.reason != PENDING_LEVEL:
        return record
    return record.model_copy(update={"level": table[record.key], "reason": None})


def assign_levels(records: Sequence[GradedQuestion], mapping: LevelMapping) -> list[GradedQuestion]:
    """Phase 2 over records held in memory (the pipeline streams instead; same result)."""
    table = level_table(
        ((r.key, r.score) for r in records if r.reason == PENDING_LEVEL and r.score is not None), mapping
    )
    return [assign_level(r, table) for r in records]
