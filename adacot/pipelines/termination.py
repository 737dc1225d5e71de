"""The termination message: the short JSON summary a stage pod leaves for the operator.

Callers: every pipeline, once its artifact is complete. In a pod the kubelet copies the file into the
container's `state.terminated.message`, which the operator turns into status fields
(adacot_operator.summary); on a laptop there is no termination log and nothing is written. Given the
artifact's directory, the message leads with `sha256`, the hash of its MANIFEST.json: the operator's
status.output.sha256 comes from here (the pod writes nothing to the API), first so that trimming to
the size limit never drops it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adacot.api.stage_pod import TERMINATION_LOG_ENV

#: Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LIMIT = 4096
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def termination_log_path() -> Path | None:
    """Where the termination message goes: $ADACOT_TERMINATION_LOG when set, else /dev/termination-log
    when it exists and is writable (the kubelet creates it in a pod), else nowhere."""
    configured = os.environ.get(TERMINATION_LOG_ENV)
    if configured:
        return Path(configured)
    default = Path(DEFAULT_TERMINATION_LOG)
    return default if default.is_file() and os.access(default, os.W_OK) else None


def write_termination_message(summary: dict[str, Any], artifact: Path | None = None) -> Path | None:
    """Write `summary` as compact JSON to the termination log (keys dropped from the end until it fits
    the 4096-byte limit), led by the sha256 of `artifact`'s MANIFEST.json when given; returns the path
    written, or None when there is none."""
    path = termination_log_path()
    if path is None:
        return None
    manifest = artifact / "MANIFEST.json" if artifact is not None else None
    if manifest is not None and manifest.is_file():
        summary = {"sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(), **summary}
    items = list(summary.items())
    text = json.dumps(dict(items), separators=(",", ":"), sort_keys=False)
    while len(text.encode()) > TERMINATION_LIMIT and items:
        items.pop()
        text = json.dumps(dict(items), separators=(",", ":"))
    path.write_text(text)
    return path


def terminate_with(summary: dict[str, Any], keys: Iterable[str], artifact: Path | None = None) -> Path | None:
    """Write the `keys` of `summary` that it has (in that order) as the termination message."""
    return write_termination_message({k: summary[k] for k in keys if k in summary}, artifact)
