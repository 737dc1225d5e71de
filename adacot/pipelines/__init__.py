"""Pipelines: one `run_<kind>(resource, out_dir, ...)` per resource kind, the I/O edge around the stages.

They read inputs, call the stage functions (adacot.stages), write the artifact directory (data shards,
MANIFEST.json, _SUCCESS) and a summary; `adacot stage <kind>` in a pod and `adacot run` both call them.
This module holds what they share: the short JSON summary for Kubernetes' termination message, and a
reader of plain JSONL / Parquet rows (pre-generated responses, benchmark files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 4096
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def termination_log_path() -> Path | None:
    """Where the termination message goes: $ADACOT_TERMINATION_LOG when set, else /dev/termination-log
    when it exists and is writable (the kubelet creates it in a pod), else nowhere."""
    configured = os.environ.get("ADACOT_TERMINATION_LOG")
    if configured:
        return Path(configured)
    default = Path(DEFAULT_TERMINATION_LOG)
    return default if default.is_file() and os.access(default, os.W_OK) else None


def write_termination_message(summary: dict[str, Any]) -> Path | None:
    """Write `summary` as compact JSON to the termination log (keys dropped from the end until it fits
    the 4096-byte limit); returns the path written, or None when there is none."""
    path = termination_log_path()
    if path is None:
        return None
    items = list(summary.items())
    text = json.dumps(dict(items), separators=(",", ":"), sort_keys=False)
    while len(text.encode()) > TERMINATION_LIMIT and items:
        items.pop()
        text = json.dumps(dict(items), separators=(",", ":"))
    path.write_text(text)
    return path


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, row) of a JSONL or Parquet file (by suffix); a malformed row raises with file:line."""
    from adacot.artifacts.datasets import iter_file_rows

    for raw in iter_file_rows(path):
        if raw.error is not None or not isinstance(raw.value, dict):
            raise ValueError(f"{raw.where}: {raw.error or 'expected a JSON object'}")
        yield raw.where, raw.value
