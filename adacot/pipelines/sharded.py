"""The skeleton of a sharded stage: shard, resume, merge under one lock, summary, manifest, message.

Callers: adacot.pipelines.grading_run and adacot.pipelines.distillation_job. Each describes itself with a
`ShardedStage` (where its shard logs live, what a shard logs per item, the chunk size, the summary keys
of the termination message) and supplies only what differs: `load` (its inputs and how to start its
engines: `ShardInputs`, `ChunkWorker`) and `content` (the merge: every output, then the summary and the
manifest). `run_shard` and `merge` do the rest, the same way for both:

    run_shard   complete artifact? return its summary. Else prepare, load, take the items whose key
                hashes to this shard, skip those already logged, process the rest chunk by chunk
                (each chunk's records appended to the shard's AppendLog as it finishes, its counters
                saved) or, when the worker streams, all at once (each record appended the moment it
                is final, the counters saved at most once a second and at the end), mark the
                shard done; other shards not done? return a summary saying so (`complete: false`,
                `waiting_for`); else `merge`.
    merge       under the merge lock, complete already? return its summary (another shard merged while
                this one waited); every shard done? `content`, summary.json, MANIFEST.json + _SUCCESS
                (artifact.finalize), then the shard logs are removed and the termination message written.

Files, besides the artifact contract of adacot.artifacts.store::

    <log_dir>/log-<i>-of-<N>.jsonl   shard i's records (adacot.artifacts.shards.AppendLog)
    <log_dir>/log-<i>-of-<N>.done    shard i has logged every item it owns
    <log_dir>/stats-<i>-of-<N>.json  shard i's counters, summed over its runs (a rerun adds to them)
    _work/merge.lock                 the one merge lock (`MERGE_LOCK`), in the artifact's own _work/

Why the lock lives in `_work/`: a complete artifact then carries no lock file, because finalize
removes `_work/`. That is safe although the holder's finalize removes the file under it: `_SUCCESS` is
written before, completeness only ever goes from false to true, and every holder re-checks it first.
A process that reaches the lock only after the removal makes a new `_work/merge.lock`, sees the
artifact complete and returns; the empty file it leaves is the whole cost. (Until this module,
distillation locked `.merge.lock` at the root; a run resumed over such a directory ignores that file.)

The shard logs are removed only after `_SUCCESS`, so a merge killed half-way (a kind may finalize
an inner artifact, like distillation's records/, before the outer one) resumes from the same logs and
done markers, with no item processed twice.

Limits: the lock is `fcntl.flock`, which local disks and NFSv4 PVCs honour; one process per shard index
(the index is the AppendLog's only writer lock); every shard loads all items and keeps its own.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from adacot.artifacts.jsonio import ArtifactError
from adacot.artifacts.manifest import Manifest, atomic_write_bytes
from adacot.artifacts.shards import AppendLog, ShardSpec, done_marker
from adacot.artifacts.store import ArtifactDir
from adacot.artifacts.summary import read_json, read_summary, write_summary
from adacot.pipelines.termination import terminate_with
from adacot.progress.meter import ProgressCallback, ProgressMeter

MERGE_LOCK = "merge.lock"
ItemT = TypeVar("ItemT")  # an input item: a question, a bank entry
RecordT = TypeVar("RecordT", bound=BaseModel)  # the record a shard logs for one item


@dataclass(frozen=True)
class ChunkWorker(Generic[ItemT, RecordT]):
    """The started engines of one shard run."""

    process: Callable[[list[ItemT]], Sequence[RecordT]]
    """One chunk of items to their records (one per item)."""
    counters: Callable[[], dict[str, Any]]
    """This run's counters so far: nested dicts of numbers (stage counts, generator usage)."""
    stream: Callable[[list[ItemT]], Iterator[RecordT]] | None = None
    """All the items to their records, yielded as each is final (continuous dispatch: no chunk waits
    for its slowest item, and a kill loses only the items in flight); used instead of `process`."""


@dataclass(frozen=True)
class ShardInputs(Generic[ItemT, RecordT]):
    """What a kind loads before its shard runs."""

    items: list[ItemT]
    """Every item of the stage; the shard keeps those it owns."""
    engines: Callable[[], AbstractContextManager[ChunkWorker[ItemT, RecordT]]]
    """Starts the engines; called only when the shard has items left to process."""


@dataclass(frozen=True)
class ShardedStage(Generic[ItemT, RecordT]):
    """Where a sharded kind keeps its shards, and the few facts the skeleton needs about it."""

    root: Path
    """The artifact directory."""
    log_dir: Path
    """Shard logs, done markers and counter files (under some `_work/`)."""
    record_type: type[RecordT]
    """What a shard logs, one per item; its `key` is the key of the item it came from."""
    key: Callable[[ItemT], str]
    """An item's key: which shard owns it, and whether it is logged already."""
    chunk_size: int
    """Items processed (and logged) together; a kill loses at most the chunk in flight."""
    short_keys: tuple[str, ...]
    """The summary keys of the termination message, in order."""

    def stats_path(self, shard: ShardSpec) -> Path:
        return self.log_dir / f"stats-{shard.label}.json"

    def missing_shards(self, count: int) -> list[str]:
        """Labels of the shards (of `count`) not marked done yet."""
        shards = [ShardSpec(index, count) for index in range(count)]
        return [s.label for s in shards if not done_marker(self.log_dir, s).is_file()]

    def counters(self, count: int) -> dict[str, Any]:
        """Every shard's counters, summed."""
        total: dict[str, Any] = {}
        for index in range(count):
            total = add_counters(total, read_json(self.stats_path(ShardSpec(index, count))))
        return total


def add_counters(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two nested dicts of counters (numbers added, dicts merged recursively, anything else dropped)."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = add_counters(out.get(key, {}), value)
        elif isinstance(value, (int, float)):
            out[key] = out.get(key, 0) + value
    return out


#: The kind's merge: given the artifact and every shard's counters summed, write every output and return
#: the summary and the manifest (finalize fills in the files). Called under the merge lock; it must skip
#: what an interrupted merge already finished.
MergeContent = Callable[[ArtifactDir, dict[str, Any]], tuple[dict[str, Any], Manifest]]


def run_shard(
    stage: ShardedStage[ItemT, RecordT],
    shard: ShardSpec,
    load: Callable[[ArtifactDir], ShardInputs[ItemT, RecordT]],
    content: MergeContent,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """This process's shard, then the merge when every shard is done (see the module docstring).

    Returns the stage's summary when the artifact is complete, else a shard summary with
    `complete: false` and the shards still missing.
    """
    artifact = ArtifactDir(stage.root)
    if artifact.complete:
        return read_summary(artifact.root)
    inputs = load(artifact.prepare())
    mine = [item for item in inputs.items if shard.owns(stage.key(item))]
    _process_shard(stage, shard, mine, inputs.engines, progress)
    waiting = stage.missing_shards(shard.count)
    if waiting:
        return {"complete": False, "shard": shard.label, "questions": len(mine), "waiting_for": waiting}
    return merge(stage, shard.count, content)


def _process_shard(
    stage: ShardedStage[ItemT, RecordT],
    shard: ShardSpec,
    mine: list[ItemT],
    engines: Callable[[], AbstractContextManager[ChunkWorker[ItemT, RecordT]]],
    progress: ProgressCallback | None,
) -> None:
    with AppendLog(stage.log_dir, shard, stage.record_type) as log:
        todo = [item for item in mine if stage.key(item) not in log]
        meter = ProgressMeter(len(mine), progress, done=len(mine) - len(todo))
        if todo:
            with engines() as worker:
                _process_chunks(stage, shard, log, todo, worker, meter)
        if not log.is_done:
            log.mark_done()


def _process_chunks(
    stage: ShardedStage[ItemT, RecordT],
    shard: ShardSpec,
    log: AppendLog[RecordT],
    todo: list[ItemT],
    worker: ChunkWorker[ItemT, RecordT],
    meter: ProgressMeter,
) -> None:
    stats_path = stage.stats_path(shard)
    previous = read_json(stats_path)  # earlier runs of this shard: this run's counters add to them
    if worker.stream is not None:
        _process_stream(
            log, todo, worker, meter, lambda: add_counters(previous, worker.counters()), stats_path
        )
        return
    for start in range(0, len(todo), stage.chunk_size):
        chunk = todo[start : start + stage.chunk_size]
        for record in worker.process(chunk):
            log.append(record)
        atomic_write_bytes(stats_path, json.dumps(add_counters(previous, worker.counters())).encode())
        meter.advance(len(chunk))


def _process_stream(
    log: AppendLog[RecordT],
    todo: list[ItemT],
    worker: ChunkWorker[ItemT, RecordT],
    meter: ProgressMeter,
    counters: Callable[[], dict[str, Any]],
    stats_path: Path,
) -> None:
    assert worker.stream is not None
    saved = time.monotonic()
    for record in worker.stream(todo):
        log.append(record)
        meter.advance(1)
        if time.monotonic() - saved >= 1.0:  # counters are cheap to lose; the records are not
            atomic_write_bytes(stats_path, json.dumps(counters()).encode())
            saved = time.monotonic()
    atomic_write_bytes(stats_path, json.dumps(counters()).encode())


@contextmanager
def merge_lock(artifact: ArtifactDir) -> Iterator[None]:
    """Exclusive across processes while held: `_work/merge.lock` (see the module docstring)."""
    artifact.work_dir.mkdir(parents=True, exist_ok=True)
    with (artifact.work_dir / MERGE_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def merge(stage: ShardedStage[ItemT, RecordT], count: int, content: MergeContent) -> dict[str, Any]:
    """The complete artifact, once all `count` shards are done (idempotent, resumable); its summary."""
    artifact = ArtifactDir(stage.root)
    if artifact.complete:  # checked before the lock too, so a late shard does not recreate _work/
        return read_summary(artifact.root)
    with merge_lock(artifact):
        if artifact.complete:  # another shard's process merged while we waited for the lock
            return read_summary(artifact.root)
        missing = stage.missing_shards(count)
        if missing:
            raise ArtifactError(f"{artifact.root}: cannot merge, shards not done: {', '.join(missing)}")
        summary, manifest = content(artifact, stage.counters(count))
        write_summary(artifact.root, summary)
        artifact.finalize(manifest)
        shutil.rmtree(stage.log_dir, ignore_errors=True)  # needed only to resume (often gone with _work/)
    terminate_with(summary, stage.short_keys, artifact.root)
    return summary
