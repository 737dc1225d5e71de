"""`run_grading_run`: a GradingRun's shard, resumable, and (once every shard is done) the merge.

Callers: `adacot stage gradingrun` (one pod of an Indexed Job), `adacot grade`, `adacot run`.

Layout under the output directory (besides the artifact contract of adacot.artifacts.store)::

    _work/graded/log-<i>-of-<N>.jsonl   phase 1: shard i's GradedQuestion records (unsolved ones pending)
    _work/graded/stats-<i>-of-<N>.json  shard i's counters and generator usage, summed over its runs
    _work/log-<i>-of-<N>.jsonl          phase 2: the same records with levels, merged into data/
    summary.json                        accuracy, level histogram, P_eval, unverifiable count, and the
                                        cut points the levels used (`cut_points`: bins or fitted quantiles)

A shard takes the questions whose stable id hashes to it, skips those already in its phase-1 log,
grades the rest in chunks of `inference.batchSize` and appends each chunk's records as it finishes (a
SIGKILL loses at most the chunk in flight; the rerun redoes it, never duplicates it). Through an
endpoint (a `StreamingGenerator`) it grades with continuous dispatch instead (`grade_stream`): every
prompt queued at once, `concurrency` requests in flight, each question's record appended as soon as it
is graded (a SIGKILL loses only the questions in flight), and the manifest's usage is the sum of the
usage the records carry, so it counts exactly the calls whose answers were written. The process that
finds every shard done takes the merge lock and merges: phase 2 assigns levels over all scores (needed
for quantiles, see adacot.stages.grade), `merge_logs` writes data/ sorted by id, then summary.json,
MANIFEST.json, _SUCCESS and the termination message. Rerunning a complete artifact returns its summary.
The shard / resume / lock / finalize steps are adacot.pipelines.sharded's; this module supplies the
inputs, the engines of a chunk (`_grader`) and the merge content (`_merged`).

Limits: the merge lock is `fcntl.flock`, which local disks and NFSv4 PVCs honour; the question pool is
loaded whole into memory by every shard (ids and texts, not responses).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from adacot.api.grading_run import GradingRun, GradingRunSpec, ResponsesSpec
from adacot.artifacts.datasets import load_questions, read_rows
from adacot.artifacts.jsonio import iter_records
from adacot.artifacts.manifest import Manifest
from adacot.artifacts.rows import GradedQuestion, Question
from adacot.artifacts.shards import AppendLog, ShardSpec, merge_logs
from adacot.artifacts.store import ArtifactDir
from adacot.backends.base import Generator, StepScorer, StreamingGenerator
from adacot.pipelines import sharded
from adacot.pipelines.sharded import ChunkWorker, ShardedStage, ShardInputs
from adacot.progress.meter import ProgressCallback
from adacot.stages import levels
from adacot.stages.grade import (
    PENDING_LEVEL,
    GradeStats,
    Response,
    assign_level,
    grade_chunk,
    grade_stream,
    level_table,
)
from adacot.verify.factory import make_verifier

PHASE1_DIR = "graded"
#: The termination message: the figures the operator copies into status.
SHORT_KEYS = (
    "kind",
    "name",
    "questions",
    "accuracy",
    "level_counts",
    "distribution",
    "unverifiable",
    "truncated",
    "prm_truncated",
)
GeneratorFactory = Callable[[], Generator]
ScorerFactory = Callable[[], StepScorer]


def run_grading_run(
    resource: GradingRun,
    out_dir: str | Path,
    *,
    shard: ShardSpec | None = None,
    progress: ProgressCallback | None = None,
    generator: GeneratorFactory | None = None,
    scorer: ScorerFactory | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Grade this process's shard (all questions when `shard` is None), merge when every shard is done.

    `generator` / `scorer` build the engines (default: adacot.backends factories from the spec); they
    are called only when there is work. Returns the run's summary when the artifact is complete, else a
    shard summary with `complete: false` and the shards still missing.
    """
    shard = shard or ShardSpec(0, 1)
    load = partial(_inputs, resource.spec, base_dir, generator, scorer)
    content = partial(_merged, resource, shard.count)
    return sharded.run_shard(_stage(resource, out_dir), shard, load, content, progress)


def merge_grading_run(resource: GradingRun, out_dir: str | Path, count: int) -> dict[str, Any]:
    """Phase 2 and the final artifact, once all `count` shards are done (idempotent, resumable)."""
    return sharded.merge(_stage(resource, out_dir), count, partial(_merged, resource, count))


def _stage(resource: GradingRun, out_dir: str | Path) -> ShardedStage[Question, GradedQuestion]:
    artifact = ArtifactDir(out_dir)
    return ShardedStage(
        root=artifact.root,
        log_dir=artifact.work_dir / PHASE1_DIR,
        record_type=GradedQuestion,
        key=lambda question: question.id,
        chunk_size=resource.spec.inference.batch_size,
        short_keys=SHORT_KEYS,
    )


def _inputs(
    spec: GradingRunSpec,
    base_dir: str | Path | None,
    generator: GeneratorFactory | None,
    scorer: ScorerFactory | None,
    artifact: ArtifactDir,
) -> ShardInputs[Question, GradedQuestion]:
    """The questions (and pre-generated responses, checked against them), before any engine starts."""
    questions = _load(spec, artifact, base_dir)
    responses = load_responses(spec.responses, base_dir) if spec.responses else None
    if responses is not None:
        _check_responses(responses, questions, spec.responses)
    return ShardInputs(questions, partial(_grader, spec, responses, generator, scorer))


def _load(spec: GradingRunSpec, artifact: ArtifactDir, base_dir: str | Path | None) -> list[Question]:
    loaded = load_questions(spec.questions, base_dir=base_dir)
    if loaded.quarantined:
        artifact.write_quarantine(loaded.quarantined)  # same content from every shard: atomic replace
    if not loaded.questions:
        raise ValueError(f"{spec.questions.path}: no questions to grade")
    return loaded.questions


# ------------------------------------------------------------------------------------ pre-generated


def load_responses(spec: ResponsesSpec, base_dir: str | Path | None = None) -> dict[str, list[Response]]:
    """Responses by question id, in file order (several rows, or a list in one row, give several
    samples), with their finish reasons where the row has `finishReasonField`. JSONL or Parquet."""
    path = Path(spec.path) if base_dir is None else Path(base_dir) / spec.path
    if not path.is_file():
        raise FileNotFoundError(f"responses file {path} does not exist")
    found: dict[str, list[Response]] = {}
    for where, row in read_rows(path):
        if spec.id_field not in row or spec.response_field not in row:
            raise ValueError(f"{where}: needs fields {spec.id_field!r} and {spec.response_field!r}")
        value = row[spec.response_field]
        texts = value if isinstance(value, list) else [value]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{where}: {spec.response_field!r} must be a string or a list of strings")
        reasons = _finish_reasons(row.get(spec.finish_reason_field), len(texts), where, spec)
        found.setdefault(str(row[spec.id_field]), []).extend(map(Response, texts, reasons))
    return found


def _finish_reasons(value: Any, count: int, where: str, spec: ResponsesSpec) -> list[str | None]:
    """One finish reason (or None) per response of a row: a string for one, a list for a list."""
    name = spec.finish_reason_field
    if value is None:
        return [None] * count
    reasons = value if isinstance(value, list) else [value]
    if len(reasons) != count:
        raise ValueError(f"{where}: {name!r} has {len(reasons)} entries for {count} responses")
    if not all(r is None or isinstance(r, str) for r in reasons):
        raise ValueError(f"{where}: {name!r} must be a string, null, or a list of them")
    return list(reasons)


def _check_responses(
    responses: dict[str, list[Response]], questions: Sequence[Question], spec: ResponsesSpec | None
) -> None:
    ids = {q.id for q in questions}
    if responses and not ids & responses.keys():
        example = next(iter(responses))
        raise ValueError(
            f"responses {spec.path if spec else ''}: no response id matches a question id "
            f"(e.g. {example!r}); check responses.idField and questions.fields.id"
        )


# ------------------------------------------------------------------------------------ phase 1


@contextmanager
def _grader(
    spec: GradingRunSpec,
    responses: dict[str, list[Response]] | None,
    generator_factory: GeneratorFactory | None,
    scorer_factory: ScorerFactory | None,
) -> Iterator[ChunkWorker[Question, GradedQuestion]]:
    """The engines of one shard run: the generator (none with pre-generated responses), the PRM (built
    on first use) and the verifier; the counters are GradeStats and the generator's usage."""
    stats = GradeStats()
    generator = None if responses is not None else (generator_factory or _default_generator(spec))()
    scorer = _LazyScorer(scorer_factory or _default_scorer(spec))
    verifier = make_verifier(spec.questions.task, spec.verification)

    def process(chunk: list[Question]) -> list[GradedQuestion]:
        return grade_chunk(
            chunk, spec, verifier, generator=generator, responses=responses, scorer=scorer, stats=stats
        )

    def counters() -> dict[str, Any]:
        return {
            "grading": stats.as_dict(),
            "usage": generator.usage.as_dict() if generator is not None else {},
        }

    stream = None
    if isinstance(generator, StreamingGenerator):
        streaming = generator  # narrowed for the closure

        def stream(todo: list[Question]) -> Iterator[GradedQuestion]:
            return grade_stream(todo, spec, verifier, streaming, scorer=scorer, stats=stats)

    try:
        yield ChunkWorker(process, counters, stream)
    finally:
        verifier.close()
        scorer.close()
        if generator is not None:
            generator.close()


class _LazyScorer:
    """Builds the PRM on first use: a chunk where every question is solved never loads it."""

    def __init__(self, factory: ScorerFactory) -> None:
        self._factory = factory
        self._scorer: StepScorer | None = None

    def __call__(self) -> StepScorer:
        if self._scorer is None:
            self._scorer = self._factory()
        return self._scorer

    def close(self) -> None:
        if self._scorer is not None:
            self._scorer.close()


def _default_generator(spec: GradingRunSpec) -> GeneratorFactory:
    def build() -> Generator:
        from adacot.backends.factory import make_generator

        built: Generator = make_generator(spec.model, spec.inference, chat=spec.prompt.use_chat_template)
        return built

    return build


def _default_scorer(spec: GradingRunSpec) -> ScorerFactory:
    def build() -> StepScorer:
        if spec.grader.prm is None:
            raise RuntimeError("no PRM configured (grader.prm)")
        from adacot.backends.prm import make_step_scorer

        built: StepScorer = make_step_scorer(spec.grader.prm, task=spec.questions.task)
        return built

    return build


# ------------------------------------------------------------------------------------ merge


def _merged(
    resource: GradingRun, count: int, artifact: ArtifactDir, counters: dict[str, Any]
) -> tuple[dict[str, Any], Manifest]:
    """Phase 2 (levels over every shard's scores), data/ sorted by id; the summary and the manifest."""
    cut_points = _assign_levels(resource, artifact, count)
    merge_logs(artifact, GradedQuestion, count)
    metrics = {**_metrics(artifact, counters), "cut_points": cut_points}
    manifest = Manifest(
        kind=resource.KIND,
        name=resource.metadata.name,
        spec=resource.spec.model_dump(mode="json", by_alias=True),
        seed=resource.spec.sampling.seed,
        metrics=metrics,
    )
    return _summary(resource, metrics), manifest


def _assign_levels(resource: GradingRun, artifact: ArtifactDir, count: int) -> list[float | None]:
    """Each phase-1 log copied to `_work/log-*` with levels (resumable: a finished copy is kept); returns
    the cut points the levels were made with (recorded in the summary, see levels.effective_cuts)."""
    phase1 = [
        AppendLog(artifact.work_dir / PHASE1_DIR, ShardSpec(i, count), GradedQuestion) for i in range(count)
    ]
    pending = [
        (r.key, r.score)
        for log in phase1
        for r in log.records()
        if r.reason == PENDING_LEVEL and r.score is not None
    ]
    mapping = resource.spec.grader.levels
    table = level_table(pending, mapping)
    for index, source in enumerate(phase1):
        with source, AppendLog(artifact.work_dir, ShardSpec(index, count), GradedQuestion) as levelled:
            if not levelled.is_done:
                for record in source.records():
                    levelled.append(assign_level(record, table))
                levelled.mark_done()
    return levels.effective_cuts([score for _, score in pending], mapping)


def _metrics(artifact: ArtifactDir, counters: dict[str, Any]) -> dict[str, Any]:
    """Figures over the merged records (with the questions flagged `truncated`: an answer cut off by max
    tokens, and `prm_truncated`: a trace over the PRM's context) plus the shards' counters and usage."""
    level_list: list[int | None] = []
    reasons: Counter[str] = Counter()
    flagged = {"truncated": 0, "prm_truncated": 0}
    tokens = {"prompt": 0, "completion": 0}
    usage: dict[str, int] | None = {}
    for path in sorted(artifact.data_dir.glob("part-*")):
        for record in iter_records(path, GradedQuestion):
            level_list.append(record.level)
            flagged["truncated"] += bool(record.truncated)
            flagged["prm_truncated"] += bool(record.prm_truncated)
            if record.level is None:
                reasons[(record.reason or "").split(":")[0]] += 1
            for attempt in record.attempts:
                tokens["prompt"] += attempt.prompt_tokens or 0
                tokens["completion"] += attempt.completion_tokens or 0
            usage = _add_usage(usage, record.usage)
    histogram = levels.level_histogram(level_list)
    graded = sum(histogram.values())
    return {
        "questions": len(level_list),
        "graded": graded,
        "solved": histogram[0],
        "accuracy": histogram[0] / graded if graded else None,
        "level_counts": {str(k): v for k, v in histogram.items()},
        "distribution": {str(k): v for k, v in levels.distribution(level_list).items()} if graded else {},
        "unverifiable": len(level_list) - graded,
        "unverifiable_reasons": dict(sorted(reasons.items())),
        **flagged,
        "tokens": tokens,
        **counters,
        **({"usage": usage} if usage else {}),
    }


def _add_usage(total: dict[str, int] | None, usage: dict[str, int] | None) -> dict[str, int] | None:
    """Records' usage summed; None once a record has none (a batch engine, or pre-generated responses:
    then the shards' counters stand)."""
    if total is None or usage is None:
        return None
    return {key: total.get(key, 0) + usage.get(key, 0) for key in sorted(total.keys() | usage.keys())}


def _summary(resource: GradingRun, metrics: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...] = ("questions", "graded", "solved", "accuracy", "level_counts", "distribution")
    keys += ("unverifiable", "truncated", "prm_truncated")
    return {
        "complete": True,
        "kind": resource.KIND,
        "name": resource.metadata.name,
        "model": resource.spec.model.identity(),
        **{k: metrics[k] for k in keys},
        "unverifiable_reasons": metrics["unverifiable_reasons"],
        "cut_points": metrics["cut_points"],
    }
