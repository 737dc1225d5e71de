"""Record-level resume for long stages: per-worker append logs keyed by question id, and their merge.

Callers: the grading and distillation stages. Each worker (shard i of N, from `JOB_COMPLETION_INDEX` or
`--shard i/N`) takes the questions whose id hashes to i, opens its own `AppendLog` in the artifact's
`_work/` directory, skips keys already logged, appends one JSON line per finished record (flushed, so a
kill loses at most the record being written) and marks the log done. When every shard is done,
`merge_logs` writes the final data shards in key order, without duplicates, and the caller finalizes.

Crash model: a line is written with one `write(2)` on an O_APPEND descriptor. A kill can leave the last
line incomplete (no trailing newline); opening the log truncates that torn tail and the record is redone.
A newline-terminated line that does not parse is real corruption and raises with file and line.

Limits: one writer per log (the shard index is the lock; two pods with the same index would interleave
lines). fsync per record is optional: without it a kernel crash (not a process kill) can lose the last
records written, which the rerun then redoes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generic, Literal, TypeVar

from pydantic import BaseModel

from adacot.artifacts.jsonio import ArtifactError, FileStats, parse_record_line, sha256_file
from adacot.artifacts.manifest import atomic_write_bytes
from adacot.artifacts.store import ArtifactDir

T = TypeVar("T", bound=BaseModel)
KeyFn = Callable[[T], str]

_LOG_NAME = re.compile(r"^log-(\d{5})-of-(\d{5})\.jsonl$")
_MERGE_PLAN = "merge-plan.json"


def shard_of(key: str, count: int) -> int:
    """The shard a key belongs to: sha256-based, so stable across processes and Python versions."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


@dataclass(frozen=True)
class ShardSpec:
    """Shard `index` of `count` (0-based), as an Indexed Job's JOB_COMPLETION_INDEX numbers them."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need count >= 1 and 0 <= index < count")

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """Parse the CLI form `i/N`."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"--shard {text!r}: expected i/N, e.g. 0/4")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_env(cls, count: int, env: Mapping[str, str] | None = None) -> ShardSpec:
        """Shard from JOB_COMPLETION_INDEX (Kubernetes Indexed Job); shard 0 of `count` when unset."""
        raw = (os.environ if env is None else env).get("JOB_COMPLETION_INDEX")
        if raw is None or raw == "":
            return cls(0, count)
        if not raw.isdigit():
            raise ValueError(f"JOB_COMPLETION_INDEX={raw!r}: expected a non-negative integer")
        return cls(int(raw), count)

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index

    @property
    def label(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"


def done_marker(directory: str | Path, shard: ShardSpec) -> Path:
    """Where `AppendLog.mark_done` records that `shard` has logged all its keys."""
    return Path(directory) / f"log-{shard.label}.done"


def default_key(record: BaseModel) -> str:
    """The record's own `key` property (every type in rows.py has one)."""
    key = getattr(record, "key", None)
    if not isinstance(key, str):
        raise ArtifactError(f"{type(record).__name__} has no string `key`; pass key= to the log")
    return key


@dataclass(frozen=True)
class _Entry:
    key: str
    offset: int
    length: int


def _scan_log(path: Path, record_type: type[T], key: KeyFn[T]) -> tuple[list[_Entry], int]:
    """Index a log's complete lines; returns the entries and the byte offset where a torn tail starts."""
    entries: list[_Entry] = []
    seen: dict[str, int] = {}
    offset = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # torn tail: the writer was killed inside this line
            record = parse_record_line(line, record_type, f"{path}:{number}")
            record_key = key(record)
            if record_key in seen:
                raise ArtifactError(
                    f"{path}:{number}: key {record_key!r} already logged at line {seen[record_key]}"
                )
            seen[record_key] = number
            entries.append(_Entry(record_key, offset, len(line)))
            offset += len(line)
    return entries, offset


class AppendLog(Generic[T]):
    """An append-only JSONL file of records for one shard; a key is never written twice.

    Opening recovers from a kill (drops a torn last line, `torn_bytes` says how much) and indexes the keys
    already present. Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        directory: str | Path,
        shard: ShardSpec,
        record_type: type[T],
        *,
        key: KeyFn[T] | None = None,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.shard = shard
        self.record_type = record_type
        self.key: KeyFn[T] = key or default_key
        self.fsync = fsync
        self.path = self.directory / f"log-{shard.label}.jsonl"
        self.done_path = done_marker(self.directory, shard)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        entries, good_bytes = _scan_log(self.path, record_type, self.key)
        self.torn_bytes = self.path.stat().st_size - good_bytes
        if self.torn_bytes:
            os.truncate(self.path, good_bytes)
        self._keys = {entry.key for entry in entries}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def __enter__(self) -> AppendLog[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def done_keys(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def is_done(self) -> bool:
        return self.done_path.is_file()

    def append(self, record: T) -> bool:
        """Write the record as one line and flush; False (nothing written) when its key is logged already."""
        record_key = self.key(record)
        if record_key in self._keys:
            return False
        if self.is_done:
            raise ArtifactError(f"{self.path}: shard is marked done; refusing to append {record_key!r}")
        if self._fd < 0:
            raise ArtifactError(f"{self.path}: log is closed")
        data = memoryview(record.model_dump_json().encode() + b"\n")
        while data:  # os.write may write less than asked (signals, full pipes); finish the line
            data = data[os.write(self._fd, data) :]
        if self.fsync:
            os.fsync(self._fd)
        self._keys.add(record_key)
        return True

    def records(self) -> Iterator[T]:
        """Stream the logged records in the order they were written."""
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield parse_record_line(line, self.record_type, f"{self.path}:{number}")

    def mark_done(self) -> None:
        """Record that this shard has logged all its keys (with the log's size and hash, checked at merge)."""
        stats = {
            "records": len(self._keys),
            "bytes": self.path.stat().st_size,
            "sha256": sha256_file(self.path),
        }
        atomic_write_bytes(self.done_path, json.dumps(stats).encode())


@dataclass(frozen=True)
class MergeResult:
    """What `merge_logs` wrote."""

    files: list[str]
    records: int
    duplicates_dropped: int


def _check_logs(work_dir: Path, num_shards: int, require_all: bool) -> list[Path]:
    """The logs to merge, refusing a mix of shard counts and (when required) unfinished shards."""
    found = {}
    for log in sorted(work_dir.glob("log-*.jsonl")) if work_dir.is_dir() else []:
        match = _LOG_NAME.match(log.name)
        if match:
            found[(int(match[1]), int(match[2]))] = log
    counts = {count for _, count in found}
    if counts - {num_shards}:
        raise ArtifactError(
            f"{work_dir}: logs for shard counts {sorted(counts)}; this merge expects {num_shards}"
        )
    problems = []
    for index in range(num_shards):
        path = found.get((index, num_shards))
        if path is None:
            problems.append(f"shard {index} has no log")
        elif not _log_matches_marker(path):
            problems.append(f"shard {index} is not marked done (or changed after it was)")
    if problems and require_all:
        raise ArtifactError(f"{work_dir}: cannot merge: " + "; ".join(problems))
    return [found[key] for key in sorted(found)]


def _log_matches_marker(path: Path) -> bool:
    marker = path.with_suffix(".done")
    if not marker.is_file():
        return False
    stats = json.loads(marker.read_bytes())
    return bool(stats.get("bytes") == path.stat().st_size and stats.get("sha256") == sha256_file(path))


def _merged_index(
    logs: list[Path], record_type: type[T], key: KeyFn[T]
) -> tuple[list[tuple[Path, _Entry]], int]:
    """All (log, entry) pairs sorted by key; a key in two logs must have identical bytes (then kept once)."""
    chosen: dict[str, tuple[Path, _Entry]] = {}
    duplicates = 0
    for path in logs:
        entries, _ = _scan_log(path, record_type, key)
        for entry in entries:
            previous = chosen.get(entry.key)
            if previous is None:
                chosen[entry.key] = (path, entry)
            elif _read_line(*previous) == _read_line(path, entry):
                duplicates += 1
            else:
                raise ArtifactError(
                    f"key {entry.key!r} logged with different content in {previous[0]} and {path}"
                )
    return [chosen[k] for k in sorted(chosen)], duplicates


def _read_line(path: Path, entry: _Entry) -> bytes:
    with path.open("rb") as handle:
        return _read_at(handle, entry)


def _read_at(handle: BinaryIO, entry: _Entry) -> bytes:
    handle.seek(entry.offset)
    return handle.read(entry.length)


def _iter_part(part: list[tuple[Path, _Entry]], record_type: type[T]) -> Iterator[T]:
    handles: dict[Path, BinaryIO] = {}
    try:
        for path, entry in part:
            handle = handles.setdefault(path, path.open("rb"))
            yield parse_record_line(_read_at(handle, entry), record_type, f"{path}@{entry.offset}")
    finally:
        for handle in handles.values():
            handle.close()


def _reset_if_plan_changed(artifact: ArtifactDir, plan: dict[str, object]) -> None:
    """Drop parts of an earlier merge with another plan, so resumed parts never mix two chunkings."""
    plan_path = artifact.state_dir / _MERGE_PLAN
    encoded = json.dumps(plan, sort_keys=True).encode()
    if plan_path.is_file() and plan_path.read_bytes() == encoded:
        return
    for path in artifact.data_dir.glob("part-*"):
        path.unlink()
        (artifact.state_dir / f"{path.name}.json").unlink(missing_ok=True)
    atomic_write_bytes(plan_path, encoded)


def merge_logs(
    artifact: ArtifactDir,
    record_type: type[T],
    num_shards: int,
    *,
    key: KeyFn[T] | None = None,
    records_per_file: int = 10_000,
    fmt: Literal["jsonl", "parquet"] = "jsonl",
    require_all: bool = True,
) -> MergeResult:
    """Combine the shard logs into data/part-NNNNN.<fmt> files, sorted by key, each key once.

    Deterministic: the same logged records give byte-identical JSONL parts, whatever order the workers
    finished in. Resumable: parts already written under the same plan (keys, chunk size, format) are
    kept; under another plan every `data/part-*` file is removed first, so a stage that merges must not
    write its own shards under that name. Call `artifact.finalize(...)` afterwards.
    """
    if records_per_file < 1:
        raise ValueError("records_per_file must be >= 1")
    artifact.prepare()
    key_fn: KeyFn[T] = key or default_key
    logs = _check_logs(artifact.work_dir, num_shards, require_all)
    ordered, duplicates = _merged_index(logs, record_type, key_fn)
    parts = [ordered[i : i + records_per_file] for i in range(0, len(ordered), records_per_file)]
    keys_digest = hashlib.sha256("\n".join(entry.key for _, entry in ordered).encode()).hexdigest()
    _reset_if_plan_changed(artifact, {"keys": keys_digest, "per_file": records_per_file, "fmt": fmt})
    names = []
    for number, part in enumerate(parts):
        name = f"part-{number:05d}.{fmt}"
        stats: FileStats = artifact.write_shard(name, _iter_part(part, record_type), record_type)
        assert stats.records == len(part), f"{name}: wrote {stats.records} of {len(part)} records"
        names.append(name)
    return MergeResult(files=names, records=len(ordered), duplicates_dropped=duplicates)
