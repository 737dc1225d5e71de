"""Progress published from a stage pod to its resource's status, through the Kubernetes API.

Callers: every `adacot` command that runs a pipeline (adacot.cli.common.run_pipeline, so the
`adacot stage <kind>` pod entry points too) runs it inside `published(callback, out)`. The operator sets
ADACOT_STATUS_PATH on every stage container (`/apis/adacot.dev/v1alpha1/namespaces/NS/PLURAL/NAME/status`);
when it is unset (a laptop, `adacot run`) nothing is sent. Each report is a JSON merge patch
`{"status": {"progress": {...}}}` to `$ADACOT_API_SERVER$ADACOT_STATUS_PATH` (default server `https://$KUBERNETES_SERVICE_HOST:
$KUBERNETES_SERVICE_PORT`), with the pod's service-account token (ADACOT_TOKEN_FILE) as bearer and the
cluster CA for https. The worker's Role allows exactly that: patch on `<plural>/status`.

When the stage ends with a complete artifact (`_SUCCESS`), the artifact's records and the sha256 of its
MANIFEST.json go to `status.output` the same way: the operator cannot read the volume, so the worker
tells it (merge patches leave the operator's claim and path in place).

Rules: progress reports are at least `MIN_INTERVAL_S` apart, except the final one (done == total, or whatever
is pending when the stage ends); reporting never fails the stage — the first failed report is logged
once at warning level (URL and error, never the token) and later ones are dropped, with a cooldown so a
black-holed API server costs at most one timeout per minute.

Limits: stdlib only (urllib), synchronous with a short timeout. In a sharded (Indexed) Job only the pod
of index 0 reports, so shards do not overwrite each other: its shard's share stands for the whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adacot.api.stage_pod import STATUS_PATH_ENV
from adacot.progress.meter import ProgressCallback, ProgressUpdate

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 5.0
TIMEOUT_S = 3.0
COOLDOWN_S = 60.0
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class StatusPublisher:
    """A progress callback that PATCHes throttled reports to one status URL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token_file: Path,
        ca_file: Path | None = None,
        *,
        min_interval: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.token_file = token_file
        self.ca_file = ca_file
        self.min_interval = min_interval
        self.sent = 0
        self._clock = clock
        self._last_sent: float | None = None
        self._pending: ProgressUpdate | None = None
        self._failed_at: float | None = None
        self._warned = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, any_shard: bool = False
    ) -> StatusPublisher | None:
        """The reporter the pod's env asks for; None outside a cluster, or in a shard other than 0
        unless `any_shard`."""
        env = os.environ if environ is None else environ
        path = env.get(STATUS_PATH_ENV)
        if not path or (not any_shard and env.get("JOB_COMPLETION_INDEX", "0") not in ("", "0")):
            return None
        server = env.get("ADACOT_API_SERVER") or _in_cluster_server(env)
        if server is None:
            log.warning("ADACOT_STATUS_PATH is set but no API server is known; progress is not published")
            return None
        ca = SERVICE_ACCOUNT / "ca.crt"
        token = Path(env.get("ADACOT_TOKEN_FILE") or SERVICE_ACCOUNT / "token")
        return cls(
            server.rstrip("/") + path, token, ca if server.startswith("https") and ca.is_file() else None
        )

    def __call__(self, report: ProgressUpdate) -> None:
        """Send now if the interval has passed (or this is the final report), else keep it pending."""
        now = self._clock()
        final = report.done >= report.total
        if not final and self._last_sent is not None and now - self._last_sent < self.min_interval:
            self._pending = report
            return
        self._send(report, now)

    def close(self) -> None:
        """Send the report still pending when the stage ends."""
        if self._pending is not None:
            self._send(self._pending, self._clock())

    def publish_output(self, out_dir: Path) -> None:
        """Records and MANIFEST.json sha256 of a complete artifact into status.output (else nothing)."""
        manifest = out_dir / "MANIFEST.json"
        if (out_dir / "_SUCCESS").is_file() and manifest.is_file():
            data = manifest.read_bytes()
            output = {
                "records": json.loads(data).get("total_records"),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            self._try({"status": {"output": output}}, self._clock())

    def _send(self, report: ProgressUpdate, now: float) -> None:
        self._pending, self._last_sent = None, now
        self._try(progress_body(report), now)

    def _try(self, body: dict[str, Any], now: float) -> None:
        if self._failed_at is not None and now - self._failed_at < COOLDOWN_S:
            return
        try:
            self._patch(body)
        except Exception as error:  # any failure to report must leave the stage running
            self._failed_at = now
            if not self._warned:
                self._warned = True
                log.warning(
                    "progress report to %s failed (%s); further failures are not logged", self.url, error
                )
        else:
            self._failed_at = None
            self.sent += 1

    def _patch(self, body: dict[str, Any]) -> None:
        token = self.token_file.read_text().strip()
        request = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json", "Authorization": f"Bearer {token}"},
        )
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            response.read()


def progress_body(report: ProgressUpdate) -> dict[str, Any]:
    """The merge patch for one report, in the CRD's camelCase (adacot.api.status.Progress)."""
    progress: dict[str, Any] = {
        "done": report.done,
        "total": report.total,
        "percent": round(report.percent, 2),
    }
    if report.rate is not None:
        progress["rate"] = round(report.rate, 4)
    if report.eta_seconds is not None:
        progress["etaSeconds"] = round(report.eta_seconds, 1)
    return {"status": {"progress": progress}}


@contextmanager
def published(
    callback: ProgressCallback | None = None,
    out: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[ProgressCallback]:
    """A progress callback: `callback` (if any), plus reports to the resource's status when the pod's
    env asks for it. When the block ends the pending report is sent; when it ends normally and `out`
    holds a complete artifact, so is the artifact's output (see the module docstring)."""
    reporter = StatusPublisher.from_env(environ)

    def both(report: ProgressUpdate) -> None:
        if callback is not None:
            callback(report)
        if reporter is not None:
            reporter(report)

    try:
        yield both
        finisher = reporter or StatusPublisher.from_env(environ, any_shard=True)
        if out is not None and finisher is not None:
            finisher.publish_output(Path(out))
    finally:
        if reporter is not None:
            reporter.close()


def _in_cluster_server(env: Mapping[str, str]) -> str | None:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
