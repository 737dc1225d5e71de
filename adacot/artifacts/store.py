"""The stage-output directory contract (DESIGN.md section 2): data shards, then MANIFEST.json, then _SUCCESS.

Callers: every stage pipeline writes through `ArtifactDir`; consumers read with `read_records`; the
operator and `adacot run` test `is_complete` to decide whether a stage must (re)run.

Layout of an artifact directory::

    data/part-00000.jsonl        finished data shards (JSONL or Parquet), the only files readers see
    data/.tmp-<pid>-<name>       a shard being written; renamed to data/<name> when complete
    _state/<name>.json           completion record of a shard: records, sha256, bytes, record type
    _work/                       append logs of long stages (shards.py), removed after finalize
    quarantine.jsonl             input rows set aside under onBadRow: quarantine
    MANIFEST.json                written by finalize once every shard is in place
    _SUCCESS                     written last; its presence means the directory is complete

Resume: a shard counts as finished only when its final name exists and its completion record matches
the file (size, and sha256 unless told not to hash). The completion record is written before the rename,
so a kill at any point leaves either a finished shard or a temp file that the next write of that shard
discards. Several workers may write shards into one directory at once as long as their shard names
differ; `finalize` and `discard_partials` assume no writer is left.

Limits: atomicity relies on POSIX rename within one filesystem (true for a PVC or a local disk; not for
object stores mounted through FUSE that emulate rename by copy).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adacot.artifacts.jsonio import ArtifactError, FileStats, iter_records, sha256_file, write_records
from adacot.artifacts.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    atomic_write_bytes,
    fsync_dir,
    read_manifest,
    write_manifest,
)
from adacot.artifacts.rows import QuarantinedRow

T = TypeVar("T", bound=BaseModel)

DATA_DIR = "data"
STATE_DIR = "_state"
WORK_DIR = "_work"
SUCCESS_NAME = "_SUCCESS"
QUARANTINE_NAME = "quarantine.jsonl"
_TEMP_PREFIX = ".tmp-"


class ShardRecord(BaseModel):
    """Completion record of one data shard (kept in _state/)."""

    model_config = ConfigDict(extra="forbid")

    records: int = Field(ge=0)
    sha256: str
    bytes: int = Field(ge=0)
    record_type: str


def is_complete(path: str | Path) -> bool:
    """True when the directory holds a finished artifact (_SUCCESS and MANIFEST.json present)."""
    root = Path(path)
    return (root / SUCCESS_NAME).is_file() and (root / MANIFEST_NAME).is_file()


class ArtifactDir:
    """One stage-output directory being written (or resumed)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.data_dir = self.root / DATA_DIR
        self.state_dir = self.root / STATE_DIR
        self.work_dir = self.root / WORK_DIR

    @property
    def complete(self) -> bool:
        return is_complete(self.root)

    def prepare(self) -> ArtifactDir:
        """Create the directories; refuse a complete artifact so a finished output is never mixed into."""
        if self.complete:
            raise ArtifactError(
                f"{self.root} is already a complete artifact (_SUCCESS present); "
                "delete it or choose another output path to run again"
            )
        for directory in (self.data_dir, self.state_dir, self.work_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    def _state_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def shard_record(self, name: str) -> ShardRecord | None:
        """The completion record of shard `name`, or None when it has none."""
        path = self._state_path(name)
        if not path.is_file():
            return None
        try:
            return ShardRecord.model_validate_json(path.read_bytes())
        except ValidationError:
            return None  # a record that does not parse is treated as absent: the shard is rewritten

    def shard_done(self, name: str, *, verify_hash: bool = True) -> bool:
        """Whether shard `name` is finished: final file present and matching its completion record."""
        final = self.data_dir / name
        record = self.shard_record(name)
        if record is None or not final.is_file() or final.stat().st_size != record.bytes:
            return False
        return not verify_hash or sha256_file(final) == record.sha256

    def write_shard(self, name: str, records: Iterable[BaseModel], record_type: type[BaseModel]) -> FileStats:
        """Write shard `name` atomically, or return its stats untouched if it is already finished.

        `records` is not consumed when the shard is finished, so callers may pass a lazy generator and
        skip the work behind it.
        """
        if "/" in name or name.startswith("."):
            raise ArtifactError(f"shard name {name!r}: must be a plain file name not starting with '.'")
        self.prepare()
        if self.shard_done(name):
            record = self.shard_record(name)
            assert record is not None  # shard_done checked it
            return FileStats(records=record.records, sha256=record.sha256, bytes=record.bytes)
        for stale in self.data_dir.glob(f"{_TEMP_PREFIX}*-{name}"):
            stale.unlink(missing_ok=True)
        temp = self.data_dir / f"{_TEMP_PREFIX}{os.getpid()}-{name}"
        stats = write_records(temp, records, record_type)
        shard = ShardRecord(
            records=stats.records, sha256=stats.sha256, bytes=stats.bytes, record_type=record_type.__name__
        )
        # Completion record first, rename second: a final name never exists without its record.
        atomic_write_bytes(self._state_path(name), shard.model_dump_json().encode())
        temp.replace(self.data_dir / name)
        fsync_dir(self.data_dir)
        return stats

    def finished_shards(self) -> list[str]:
        """Names of the finished shards in data/, sorted (size checked, not hashed)."""
        if not self.data_dir.is_dir():
            return []
        names = [p.name for p in self.data_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sorted(n for n in names if self.shard_done(n, verify_hash=False))

    def discard_partials(self) -> list[Path]:
        """Delete temp files of interrupted shard writes. Only when no other writer is active."""
        removed = sorted(self.data_dir.glob(f"{_TEMP_PREFIX}*")) if self.data_dir.is_dir() else []
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def write_quarantine(self, rows: Iterable[QuarantinedRow]) -> int:
        """Write the quarantined input rows to quarantine.jsonl (atomically); returns their count."""
        self.prepare()
        temp = self.root / f"{_TEMP_PREFIX}{os.getpid()}-{QUARANTINE_NAME}"
        stats = write_records(temp, rows, QuarantinedRow)
        temp.replace(self.root / QUARANTINE_NAME)
        fsync_dir(self.root)
        return stats.records

    def _unfinished_files(self) -> list[str]:
        names = [p.name for p in self.data_dir.iterdir() if not p.name.startswith(_TEMP_PREFIX)]
        return sorted(n for n in names if not self.shard_done(n, verify_hash=False))

    def _file_entries(self) -> tuple[dict[str, FileEntry], set[str]]:
        entries: dict[str, FileEntry] = {}
        record_types: set[str] = set()
        for name in self.finished_shards():
            record = self.shard_record(name)
            assert record is not None  # finished_shards checked it
            entries[f"{DATA_DIR}/{name}"] = FileEntry(
                records=record.records, sha256=record.sha256, bytes=record.bytes
            )
            record_types.add(record.record_type)
        return entries, record_types

    def _quarantine_count(self, manifest: Manifest) -> tuple[int, str | None]:
        path = self.root / QUARANTINE_NAME
        if not path.is_file():
            return manifest.quarantined, manifest.quarantine_file
        with path.open("rb") as handle:
            count = sum(1 for line in handle if line.strip())
        return count, QUARANTINE_NAME

    def finalize(self, manifest: Manifest, *, keep_work: bool = False) -> Manifest:
        """Complete the artifact: list every finished shard in MANIFEST.json, then write _SUCCESS.

        Fails, writing nothing, when data/ holds a file that is not a finished shard. `files`,
        `total_records`, the quarantine fields and (when unset) `record_type` are filled in here.
        """
        self.prepare()
        self.discard_partials()
        unfinished = self._unfinished_files()
        if unfinished:
            raise ArtifactError(
                f"{self.data_dir}: cannot finalize, not finished shards: {', '.join(unfinished)} "
                "(interrupted writes or files not written by ArtifactDir.write_shard)"
            )
        entries, record_types = self._file_entries()
        if len(record_types) > 1:
            kinds = sorted(record_types)
            raise ArtifactError(f"{self.data_dir}: shards hold different record types: {kinds}")
        quarantined, quarantine_file = self._quarantine_count(manifest)
        final = manifest.model_copy(
            update={
                "files": entries,
                "total_records": sum(e.records for e in entries.values()),
                "quarantined": quarantined,
                "quarantine_file": quarantine_file,
                "record_type": manifest.record_type or next(iter(record_types), None),
            }
        )
        write_manifest(self.root, final)
        atomic_write_bytes(self.root / SUCCESS_NAME, b"")
        if not keep_work:
            # After _SUCCESS: the logs are only needed to resume, and the artifact is complete now.
            shutil.rmtree(self.work_dir, ignore_errors=True)
        return read_manifest(self.root)


def verify_artifact(path: str | Path) -> Manifest:
    """Check every file the manifest lists (presence, size, sha256) and that data/ holds no other file.

    Raises ArtifactError listing every problem found; returns the manifest when all is well.
    """
    root = Path(path)
    manifest = read_manifest(root)
    problems = []
    for relative, entry in manifest.files.items():
        file = root / relative
        if not file.is_file():
            problems.append(f"{relative}: missing")
        elif file.stat().st_size != entry.bytes:
            problems.append(f"{relative}: {file.stat().st_size} bytes, manifest says {entry.bytes}")
        elif sha256_file(file) != entry.sha256:
            problems.append(f"{relative}: sha256 differs from the manifest (file modified after finalize)")
    data_dir = root / DATA_DIR
    listed = set(manifest.files)
    if data_dir.is_dir():
        present = {f"{DATA_DIR}/{p.name}" for p in data_dir.iterdir()}
        extra = sorted(present - listed)
        problems.extend(f"{name}: not listed in the manifest" for name in extra)
    if problems:
        raise ArtifactError(f"{root}: artifact does not match {MANIFEST_NAME}: " + "; ".join(problems))
    return manifest


def artifact_files(path: str | Path, *, allow_incomplete: bool = False, verify: bool = False) -> list[Path]:
    """The data files of an artifact in reading order.

    An incomplete directory is refused unless `allow_incomplete`, in which case its finished shards are
    returned (useful for inspecting a running stage). `verify` checks sha256 of every file first.
    """
    root = Path(path)
    if is_complete(root):
        manifest = verify_artifact(root) if verify else read_manifest(root)
        return [root / relative for relative in manifest.files]
    if not allow_incomplete:
        state = "does not exist" if not root.exists() else "is incomplete (no _SUCCESS)"
        raise ArtifactError(
            f"{root} {state}: the stage writing it has not finished; wait for it, rerun it, "
            "or read its finished shards with allow_incomplete=True"
        )
    artifact = ArtifactDir(root)
    return [artifact.data_dir / name for name in artifact.finished_shards()]


def read_records(
    path: str | Path, record_type: type[T], *, allow_incomplete: bool = False, verify: bool = False
) -> Iterator[T]:
    """Stream the records of an artifact directory, file after file (see `artifact_files`)."""
    for file in artifact_files(path, allow_incomplete=allow_incomplete, verify=verify):
        yield from iter_records(file, record_type)
