"""The termination message: the short JSON summary a stage pod leaves for the operator.

Callers: every pipeline, once its artifact is complete. In a pod the kubelet copies the file into the
container's `state.terminated.message`, which the operator turns into status fields
(adacot_operator.summary); on a laptop there is no termination log and nothing is written.
"""

from __future__ import annotations

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


def terminate_with(summary: dict[str, Any], keys: Iterable[str]) -> Path | None:
    """Write the `keys` of `summary` that it has (in that order) as the termination message."""
    return write_termination_message({k: summary[k] for k in keys if k in summary})
