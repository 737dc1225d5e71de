"""`summary.json`: the short, human-readable figures every stage artifact carries beside its manifest.

Callers: every pipeline writes one (`write_summary`) before it finalises its artifact; the runner, the
CLI and consumers of an artifact read one back (`read_summary`, which refuses an incomplete artifact).
The manifest holds the full metrics; the summary is what a person or the operator reads first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adacot.artifacts.manifest import atomic_write_bytes
from adacot.artifacts.store import artifact_files

SUMMARY_NAME = "summary.json"


def write_json(path: Path, value: Any) -> None:
    """`value` as indented JSON with a final newline, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def write_summary(root: str | Path, summary: dict[str, Any]) -> None:
    """The summary.json of the artifact at `root`."""
    write_json(Path(root) / SUMMARY_NAME, summary)


def read_summary(root: str | Path) -> dict[str, Any]:
    """The summary.json of a complete artifact (a clear error when it is not complete)."""
    artifact_files(root)
    return read_json(Path(root) / SUMMARY_NAME)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; {} when the file is missing or holds something else."""
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}
