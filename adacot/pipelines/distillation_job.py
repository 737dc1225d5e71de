"""`run_distillation_job`: sample the bank, distil this process's shard (resumable), merge and write outputs.

Callers: `adacot stage distillationjob` (one pod of an Indexed Job), `adacot distill`, `adacot run`.

Before anything expensive, in this order: P_eval's GradingRun (fromGradingRun) is checked against the
bank (same model, grader and level rule, else ValidationFailed naming both: adacot.pipelines
.level_scale), the bank is read (an incomplete artifact or an empty bank is an error), the distribution
is resolved (fromGradingRun needs `eval_dir`, the GradingRun's artifact),
the bank is decontaminated, the sample is drawn from the clean bank (N larger than the clean bank, a
short level under `shortfall: fail`, or fewer than N questions at the levels with a share - excluded
levels never make up the difference - is an error naming the counts), then the teacher endpoint is
probed (a refused connection is an error). Decontaminating before drawing keeps the job at exactly N
questions in the sampler's reported shape instead of dropping some after the draw. The sample is
saved as `sample.jsonl` (with `sample.json`: the sampler's report, removed questions, and the inputs
that made it), so every shard and every restart distils the same questions; a restart whose spec or
bank no longer matches the saved sample is refused.

Layout under the output directory (besides the artifact contract of adacot.artifacts.store)::

    sample.jsonl, sample.json      the plan (BankEntry rows; report)
    removed/contaminated.jsonl     bank questions dropped by decontamination before drawing, with the match
    records/_work/log-<i>-of-<N>   shard i's DistilledQuestion records, one line per question, flushed
    records/_work/stats-<i>-of-<N> shard i's counters and teacher usage, summed over its runs
    records/                       merged DistilledQuestion records (every sample, outcome, verdict)
    traces/                        kept CotTrace rows
    data/part-*.jsonl              the SFT dataset: SftExample rows (TRL conversational messages)
    exports/                       sharegpt.jsonl / alpaca.jsonl + dataset_info.json (spec.exports)
    distribution.png, summary.json acceptance per level, tokens and attempts per kept sample, shares

A shard whose teacher takes prompts as they come (an endpoint or the in-pod server: `StreamingGenerator`)
distils with continuous dispatch (`distill_stream`: `concurrency` requests always in flight, a question's
next round asked as soon as its last is verified) and appends each question's record the moment it is
final; a SIGKILL loses only the questions in flight, which the rerun redoes, never duplicates. Any other
teacher (a batch engine) distils in chunks of twice the endpoint's concurrency, a chunk's records
appended when the whole chunk is done.
The process that finds every shard done merges under the merge lock; every merge step skips what an
interrupted merge already finished, and the shard logs stay until the whole job is complete (records/ is
finalized with them kept), so a merge killed half-way resumes without asking the teacher again.
Generator usage (requests, retries, tokens) is summed per shard over its runs and totalled in the
manifest; when the records carry their own usage (streaming), the manifest's usage is the sum over the
records instead, so after a kill and resume it counts exactly the calls whose answers were written (the
calls in flight at the kill are not counted: their questions are asked again and counted then).
The shard / resume / lock / finalize steps are adacot.pipelines.sharded's; this module supplies the
plan, the engines of a shard run (`_distiller`) and the merge content (`_merged`).

Limits: the merge lock is `fcntl.flock` (local disks, NFSv4); the bank is read whole into memory.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from adacot.api.distillation_job import DistillationJob, DistillationJobSpec
from adacot.artifacts.jsonio import iter_jsonl, iter_records
from adacot.artifacts.manifest import Manifest, atomic_write_bytes, read_manifest
from adacot.artifacts.rows import BankEntry, CotTrace, DistilledQuestion, SftExample
from adacot.artifacts.shards import ShardSpec, merge_logs
from adacot.artifacts.store import ArtifactDir, read_records
from adacot.artifacts.summary import read_json, read_summary, write_json
from adacot.backends.base import Generator, StreamingGenerator
from adacot.pipelines import sharded
from adacot.pipelines.distillation_exports import summarise, write_exports
from adacot.pipelines.level_scale import check_p_eval
from adacot.pipelines.sharded import ChunkWorker, ShardedStage, ShardInputs
from adacot.progress.meter import ProgressCallback
from adacot.stages.decontaminate import BenchmarkIndex
from adacot.stages.distill import DistillStats, Verifiers, decontaminate, distill_chunk, distill_stream

if TYPE_CHECKING:
    from adacot.stages.distribution import Distribution
    from adacot.stages.sample import SampleResult

SAMPLE_ROWS, SAMPLE_REPORT = "sample.jsonl", "sample.json"
RECORDS_DIR, TRACES_DIR = "records", "traces"
RECORDS_PER_FILE = 2_000
#: The termination message: the figures the operator copies into status.
SHORT_KEYS = ("kind", "name", "sampled", "kept", "acceptance_rate", "target_distribution",
              "achieved_distribution", "shortfall", "contaminated")  # fmt: skip
GeneratorFactory = Callable[[], Generator]
T = TypeVar("T", bound=BaseModel)


def run_distillation_job(
    resource: DistillationJob,
    out_dir: str | Path,
    *,
    bank_dir: str | Path,
    eval_dir: str | Path | None = None,
    shard: ShardSpec | None = None,
    progress: ProgressCallback | None = None,
    generator: GeneratorFactory | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Distil this process's shard (all questions when `shard` is None); merge when every shard is done.

    `generator` builds the teacher (default: spec.teacher's endpoint, or its in-pod server); it is called
    only when there is work. Returns the job's summary when complete, else a shard summary with
    `complete: false` and the shards still missing.
    """
    shard = shard or ShardSpec(0, 1)
    load = partial(_inputs, resource.spec, Path(bank_dir), eval_dir, base_dir, generator)
    content = partial(_merged, resource, shard.count)
    return sharded.run_shard(_stage(resource, out_dir), shard, load, content, progress)


def merge_distillation_job(resource: DistillationJob, out_dir: str | Path, count: int) -> dict[str, Any]:
    """Merge the shards and write every output, once all `count` shards are done (idempotent)."""
    return sharded.merge(_stage(resource, out_dir), count, partial(_merged, resource, count))


def _stage(resource: DistillationJob, out_dir: str | Path) -> ShardedStage[BankEntry, DistilledQuestion]:
    endpoint = resource.spec.teacher.endpoint
    records = ArtifactDir(Path(out_dir) / RECORDS_DIR)
    return ShardedStage(
        root=Path(out_dir),
        log_dir=records.work_dir,
        record_type=DistilledQuestion,
        key=lambda entry: entry.question.id,
        chunk_size=2 * (endpoint.concurrency if endpoint is not None else 32),
        short_keys=SHORT_KEYS,
    )


def _inputs(
    spec: DistillationJobSpec,
    bank_dir: Path,
    eval_dir: str | Path | None,
    base_dir: str | Path | None,
    factory: GeneratorFactory | None,
    artifact: ArtifactDir,
) -> ShardInputs[BankEntry, DistilledQuestion]:
    """The plan (drawn once, then reused by every shard and restart); the teacher starts only for work.
    P_eval's run must share the bank's level scale (ValidationFailed otherwise), checked first."""
    check_p_eval(spec, bank_dir, eval_dir)
    plan = load_or_draw(spec, artifact.root, bank_dir, eval_dir, base_dir)
    return ShardInputs(plan, partial(_distiller, spec, artifact.root, factory))


# ------------------------------------------------------------------------------------------ the plan


def _sample_inputs(spec: DistillationJobSpec, bank_dir: Path) -> dict[str, Any]:
    """What the saved sample depends on; a restart with different inputs must not reuse it."""
    manifest = read_manifest(bank_dir)
    keys = ("distribution", "size", "seed", "shortfall", "balanceBy", "decontamination")
    dumped = spec.model_dump(mode="json", by_alias=True)
    return {"bank": {k: e.sha256 for k, e in manifest.files.items()}, **{k: dumped.get(k) for k in keys}}


def load_or_draw(
    spec: DistillationJobSpec,
    root: Path,
    bank_dir: Path,
    eval_dir: str | Path | None,
    base_dir: str | Path | None,
) -> list[BankEntry]:
    """The saved sample, or a fresh one drawn from the decontaminated bank (saved before it is returned)."""
    bank = list(read_records(bank_dir, BankEntry))  # raises clearly for an incomplete artifact
    inputs = _sample_inputs(spec, bank_dir)
    report_path = root / SAMPLE_REPORT
    if report_path.is_file():
        saved = read_json(report_path)
        if saved.get("inputs") != inputs:
            raise ValueError(
                f"{root}: the saved sample was drawn from another bank or spec (distribution, size, seed, "
                "shortfall, balanceBy, decontamination); use a new output directory"
            )
        return list(iter_jsonl(root / SAMPLE_ROWS, BankEntry))
    if not bank:
        raise ValueError(f"bank {bank_dir} holds no questions: there is nothing to sample")
    from adacot.stages.distribution import resolve

    distribution = resolve(spec.distribution, eval_summary=_eval_summary(spec, eval_dir))
    # Decontaminate the bank, then draw: the job gets exactly N clean questions in the target shape.
    clean, removed = decontaminate(bank, _benchmark_index(spec, base_dir))
    _jsonl(root / "removed" / "contaminated.jsonl", [asdict(r) for r in removed])
    drawn = _draw(spec, distribution, clean, len(bank), len(removed))
    atomic_write_bytes(
        root / SAMPLE_ROWS, b"".join(e.model_dump_json().encode() + b"\n" for e in drawn.entries)
    )
    report = {"inputs": inputs, "sampler": drawn.as_dict(), "contaminated": len(removed)}
    write_json(report_path, report)  # written last
    return list(drawn.entries)


def _draw(
    spec: DistillationJobSpec, distribution: Distribution, clean: list[BankEntry], total: int, removed: int
) -> SampleResult:
    """The sample of the clean bank; errors say what decontamination took away."""
    from adacot.stages.sample import SampleError, sample

    if removed and spec.size > len(clean):
        raise ValueError(
            f"N={spec.size} is larger than the bank after decontamination ({len(clean)} clean of {total} "
            f"questions; {removed} overlap the benchmarks, listed in removed/contaminated.jsonl)"
        )
    try:
        return sample(
            clean, distribution, spec.size, spec.seed, shortfall=spec.shortfall, balance_by=spec.balance_by
        )
    except SampleError as error:
        if not removed:
            raise
        raise SampleError(f"{error} (after decontamination removed {removed} bank questions)") from None


def _eval_summary(spec: DistillationJobSpec, eval_dir: str | Path | None) -> dict[str, Any] | None:
    if spec.distribution.from_grading_run is None:
        return None
    if eval_dir is None:
        name = spec.distribution.from_grading_run.name
        raise ValueError(f"distribution.fromGradingRun {name!r}: give the GradingRun's output directory")
    return read_summary(eval_dir)


def _benchmark_index(spec: DistillationJobSpec, base_dir: str | Path | None) -> BenchmarkIndex | None:
    if spec.decontamination is None:
        return None
    from adacot.pipelines.difficulty_bank import load_benchmarks

    decon = spec.decontamination
    return BenchmarkIndex(load_benchmarks(decon.benchmarks, base_dir), decon.ngram, decon.threshold)


def _jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())


# ------------------------------------------------------------------------------------------ one shard


@contextlib.contextmanager
def _distiller(
    spec: DistillationJobSpec, root: Path, factory: GeneratorFactory | None
) -> Iterator[ChunkWorker[BankEntry, DistilledQuestion]]:
    """The engines of one shard run: the teacher and the verifiers; the counters are DistillStats and
    the teacher's usage."""
    with teacher(spec, root, factory) as generator:
        stats, verifiers = DistillStats(), Verifiers(spec.verification)
        stream = None
        if isinstance(generator, StreamingGenerator):
            streaming = generator  # narrowed for the closure

            def stream(todo: list[BankEntry]) -> Iterator[DistilledQuestion]:
                return distill_stream(todo, spec.teacher, spec.filter, streaming, verifiers, stats)

        try:
            yield ChunkWorker(
                lambda chunk: distill_chunk(chunk, spec.teacher, spec.filter, generator, verifiers, stats),
                lambda: {"distill": stats.as_dict(), "usage": generator.usage.as_dict()},
                stream,
            )
        finally:
            verifiers.close()


@contextlib.contextmanager
def teacher(spec: DistillationJobSpec, root: Path, factory: GeneratorFactory | None) -> Iterator[Generator]:
    """The teacher generator: the caller's factory, the endpoint (probed first), or the in-pod server."""
    from adacot.backends.openai_http import OpenAIGenerator
    from adacot.backends.teacher_server import check_reachable, running_teacher

    with contextlib.ExitStack() as stack:
        if factory is not None:
            built = factory()
        elif spec.teacher.server is not None:
            endpoint = stack.enter_context(running_teacher(spec.teacher.server, root / "teacher-server.log"))
            built = OpenAIGenerator(endpoint)
        else:
            assert spec.teacher.endpoint is not None  # TeacherSpec guarantees endpoint or server
            check_reachable(spec.teacher.endpoint)
            built = OpenAIGenerator(spec.teacher.endpoint)
        stack.callback(built.close)
        yield built


def _write_parts(artifact: ArtifactDir, rows: Iterator[T], record_type: type[T]) -> None:
    """Shards of RECORDS_PER_FILE rows; each chunk is consumed even when its shard is already written,
    so a resumed merge stays aligned."""
    number = 0
    while chunk := list(islice(rows, RECORDS_PER_FILE)):
        artifact.write_shard(f"part-{number:05d}.jsonl", chunk, record_type)
        number += 1


def _merge_records(resource: DistillationJob, root: Path, count: int, counters: dict[str, Any]) -> None:
    records = ArtifactDir(root / RECORDS_DIR)
    if records.complete:
        return
    merge_logs(records, DistilledQuestion, count, records_per_file=RECORDS_PER_FILE)
    usage = _records_usage(records)
    metrics = counters if usage is None else {**counters, "usage": usage}
    manifest = Manifest(kind="DistilledQuestions", name=resource.metadata.name, metrics=metrics)
    records.finalize(manifest, keep_work=True)  # the shard logs go once the whole job is complete


def _records_usage(records: ArtifactDir) -> dict[str, int] | None:
    """The teacher usage summed over the merged records, or None when some record has none (a batch
    teacher, or files from before per-record usage): then the shards' counters stand."""
    total: dict[str, int] = {}
    for path in sorted(records.data_dir.glob("part-*")):
        for record in iter_records(path, DistilledQuestion):
            if record.usage is None:
                return None
            for key, value in record.usage.items():
                total[key] = total.get(key, 0) + value
    return dict(sorted(total.items())) if total else None


def _kept_traces(root: Path) -> Iterator[CotTrace]:
    for record in read_records(root / RECORDS_DIR, DistilledQuestion):
        yield from record.kept


def _write_dataset(resource: DistillationJob, root: Path) -> None:
    from adacot.stages.exports import sft_example

    traces = ArtifactDir(root / TRACES_DIR)
    if not traces.complete:
        _write_parts(traces.prepare(), _kept_traces(root), CotTrace)
        traces.finalize(Manifest(kind="CotTraces", name=resource.metadata.name))
    examples = (sft_example(t) for t in read_records(traces.root, CotTrace))
    _write_parts(ArtifactDir(root), examples, SftExample)
    write_exports(root, resource.metadata.name, resource.spec.exports)


def _merged(
    resource: DistillationJob, count: int, artifact: ArtifactDir, counters: dict[str, Any]
) -> tuple[dict[str, Any], Manifest]:
    """records/, traces/, the dataset and its exports (each step skips what is done); summary, manifest."""
    _merge_records(resource, artifact.root, count, counters)
    _write_dataset(resource, artifact.root)
    summary = summarise(resource, artifact.root)
    manifest = Manifest(
        kind=resource.KIND,
        name=resource.metadata.name,
        record_type=SftExample.__name__,
        spec=resource.spec.model_dump(mode="json", by_alias=True),
        seed=resource.spec.seed,
        metrics=summary,
    )
    return summary, manifest
