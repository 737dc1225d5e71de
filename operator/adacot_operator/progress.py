"""Progress of a running stage, read by the operator from the pod (stage pods write nothing to the API).

Called by adacot_operator.handlers on every reconcile of a resource whose Job runs; the value goes into
`Children.progress`, and adacot_operator.status writes it to status.progress. The stage serves its
latest report at `GET http://<podIP>:PROGRESS_PORT/progress` (adacot.progress.publish); the pod read is
the running one of completion index 0 (its shard stands for the whole, as before), or the only one.
Rules: best-effort: a pod without an IP, a refused or slow connection (TIMEOUT_S), a non-JSON or
non-object answer all read as None (status keeps its last progress); never raises. The answer is a
number the pod chose: it is validated against the Progress model before it reaches status, and it
cannot name anything but this resource's own progress.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from adacot.api.stage_pod import PROGRESS_PATH, PROGRESS_PORT
from adacot_operator.names import COMPLETION_INDEX_KEY

TIMEOUT_S = 2.0


def progress_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The running pod whose progress stands for the stage's: index 0, or the only one."""
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    for pod in running:
        if (pod.get("metadata", {}).get("annotations") or {}).get(COMPLETION_INDEX_KEY, "0") == "0":
            return pod
    return None


def read_progress(
    pods: list[dict[str, Any]], port: int = PROGRESS_PORT, timeout: float = TIMEOUT_S
) -> dict[str, Any] | None:
    """The stage's latest progress (camelCase), or None when it cannot be read (see the docstring)."""
    pod = progress_pod(pods)
    ip = ((pod or {}).get("status") or {}).get("podIP")
    if not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{PROGRESS_PATH}", timeout=timeout) as response:
            value = json.loads(response.read() or b"null")
    except Exception:  # a stage that is starting, gone or broken: no progress this time
        return None
    return value if isinstance(value, dict) else None
