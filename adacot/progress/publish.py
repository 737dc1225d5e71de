"""Progress of a stage pod, served read-only for the operator to read: the pod writes nothing to the API.

Callers: every `adacot` command that runs a pipeline (adacot.cli.common.run_pipeline, so the
`adacot stage <kind>` pod entry points too) runs it inside `published(callback)`; SFT training reports
through `StatusPublisher.from_env()` on rank 0 (adacot.training.progress).

Route: the operator sets ADACOT_PROGRESS_PORT (and ADACOT_POD_IP from the downward API's status.podIP)
on every stage container; when the port is unset (a laptop, `adacot run`) nothing is served. Otherwise
the first report starts a tiny stdlib HTTP server in a daemon thread, bound to the pod IP (all
addresses when unset), whose only route is `GET /progress`: the latest report as JSON in the CRD's
camelCase progress shape (adacot.api.status.Progress: done, total, percent, rate, etaSeconds), 204
before the first report. The operator GETs it from the running pod (index 0 of an Indexed Job: its
shard stands for the whole) when it reconciles, and writes status.progress itself
(adacot_operator.progress). Why: a stage pod holds no service-account token and no Role, so a
compromised pod can neither write status nor touch other resources; reading a number from it is the
operator's choice.

Rules: reporting never fails the stage (a port that cannot be bound is logged once, then reports are
dropped); one server per process and address (the stage command and an in-process trainer share it; a
second process of the pod that reports, a torchrun child, binds only when the parent never did). The
throttle is the reader's: the operator reads once per reconcile (pod events, its 30 s timer) and writes
status only when the value changed.
Limits: stdlib only; no TLS or authentication: the endpoint says how far a stage is, nothing else,
and the chart's NetworkPolicy admits only the operator.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from adacot.api.stage_pod import POD_IP_ENV, PROGRESS_PATH, PROGRESS_PORT_ENV
from adacot.progress.meter import ProgressCallback, ProgressUpdate

log = logging.getLogger(__name__)

Address = tuple[str, int]


class ProgressServer:
    """The latest progress of this process, served at GET /progress on one address (see the module
    docstring). One per address and process: `for_address` returns the existing one."""

    _servers: ClassVar[dict[Address, ProgressServer]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, address: Address) -> None:
        self.address = address
        self.latest: dict[str, Any] | None = None
        self._http: ThreadingHTTPServer | None = None
        self._failed = False

    @classmethod
    def for_address(cls, address: Address) -> ProgressServer:
        with cls._guard:
            return cls._servers.setdefault(address, cls(address))

    @property
    def port(self) -> int | None:
        """The bound port (the requested one, or the OS's pick for port 0); None before start."""
        return None if self._http is None else int(self._http.server_address[1])

    def update(self, progress: dict[str, Any]) -> None:
        """Serve `progress` from now on (starting the server on the first call)."""
        self.latest = progress
        with self._guard:
            if self._http is None and not self._failed:
                self._start()

    def stop(self) -> None:
        """Stop serving and forget this address (tests; a pod's server ends with its process)."""
        with self._guard:
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
                self._http = None
            self._servers.pop(self.address, None)

    def _start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != PROGRESS_PATH:
                    self.send_error(404)
                    return
                body = json.dumps(server.latest).encode() if server.latest is not None else b""
                self.send_response(200 if body else 204)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the operator polls: one line per read would drown the stage's log

        try:
            self._http = ThreadingHTTPServer(self.address, Handler)
        except OSError as error:  # port in use, address not local: progress is best-effort
            self._failed = True
            log.warning("progress endpoint %s:%s not started (%s); progress is not published", *self.address,
                        error)  # fmt: skip
            return
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="progress-endpoint", daemon=True).start()


class StatusPublisher:
    """A progress callback that hands each report to the process's ProgressServer."""

    def __init__(self, server: ProgressServer) -> None:
        self.server = server
        self.sent = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StatusPublisher | None:
        """The publisher the pod's env asks for; None outside a cluster (no ADACOT_PROGRESS_PORT)."""
        env = os.environ if environ is None else environ
        port = env.get(PROGRESS_PORT_ENV, "")
        if not port.isdigit():
            if port:
                log.warning("%s=%r is not a port; progress is not published", PROGRESS_PORT_ENV, port)
            return None
        host = env.get(POD_IP_ENV) or "0.0.0.0"
        return cls(ProgressServer.for_address((host, int(port))))

    def __call__(self, report: ProgressUpdate) -> None:
        self.server.update(progress_fields(report))
        self.sent += 1

    def close(self) -> None:
        """Nothing pending: every report is served at once (kept for the trainer's on_end hook)."""


def progress_fields(report: ProgressUpdate) -> dict[str, Any]:
    """One report in the CRD's camelCase progress shape (adacot.api.status.Progress)."""
    progress: dict[str, Any] = {
        "done": report.done,
        "total": report.total,
        "percent": round(report.percent, 2),
    }
    if report.rate is not None:
        progress["rate"] = round(report.rate, 4)
    if report.eta_seconds is not None:
        progress["etaSeconds"] = round(report.eta_seconds, 1)
    return progress


@contextmanager
def published(
    callback: ProgressCallback | None = None, environ: Mapping[str, str] | None = None
) -> Iterator[ProgressCallback]:
    """A progress callback: `callback` (if any), plus the pod's progress endpoint when the pod's env
    asks for one (see the module docstring)."""
    reporter = StatusPublisher.from_env(environ)

    def both(report: ProgressUpdate) -> None:
        if callback is not None:
            callback(report)
        if reporter is not None:
            try:
                reporter(report)
            except Exception as error:  # progress must never fail the stage
                log.warning("progress not published: %s", error)

    yield both
