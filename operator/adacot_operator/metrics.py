"""Prometheus metrics of the operator (prometheus-client), served on ADACOT_METRICS_PORT.

Callers: `adacot_operator.handlers` times every reconcile with `reconciling` and reports each status
change with `observe_transition` (stage outcomes and durations, queue wait) and `track_phase`
(resources by kind and phase). Metric names are the operator contract's; the Helm chart's
ServiceMonitor scrapes them. Limits: the per-resource phase gauge is rebuilt from what this process has
reconciled since it started (a restart re-learns it on the first pass over all resources, which kopf's
resume makes); deleted resources are forgotten through `forget`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from adacot_operator.failures import condition_of
from adacot_operator.status import parse_time

#: Stage and queue durations run from seconds (tiny tests) to days (large SFT).
_LONG_BUCKETS = (1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200)


class Metrics:
    """The operator's metric families, on one registry (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.reconciles = PromCounter(
            "adacot_reconcile", "Reconciles by kind and result.", ["kind", "result"], registry=registry
        )
        self.errors = PromCounter(
            "adacot_reconcile_errors", "Reconciles that raised.", ["kind"], registry=registry
        )
        self.duration = Histogram(
            "adacot_reconcile_duration_seconds", "Time spent in one reconcile.", ["kind"], registry=registry
        )
        self.resources = Gauge(
            "adacot_resources", "Resources by kind and phase.", ["kind", "phase"], registry=registry
        )
        self.stage_duration = Histogram(
            "adacot_stage_duration_seconds",
            "Start to completion of a stage's Job.",
            ["kind", "outcome"],
            buckets=_LONG_BUCKETS,
            registry=registry,
        )
        self.outcomes = PromCounter(
            "adacot_stage_outcomes", "Stages finished, by outcome.", ["kind", "outcome"], registry=registry
        )
        self.queue_wait = Histogram(
            "adacot_queue_wait_seconds",
            "Time a stage's Job waited for admission by its queue.",
            ["kind"],
            buckets=_LONG_BUCKETS,
            registry=registry,
        )
        self._phases: dict[tuple[str, str, str], str] = {}
        self._seen: dict[str, set[str]] = {}  # phases ever reported per kind, so emptied ones read 0
        self._lock = threading.Lock()

    @contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        """Count and time one reconcile; an exception counts as an error and propagates."""
        start = time.perf_counter()
        try:
            yield
        except Exception:
            self.errors.labels(kind).inc()
            self.reconciles.labels(kind, "error").inc()
            raise
        else:
            self.reconciles.labels(kind, "success").inc()
        finally:
            self.duration.labels(kind).observe(time.perf_counter() - start)

    def track_phase(self, kind: str, namespace: str, name: str, phase: str | None) -> None:
        """Record a resource's current phase and refresh the per-phase gauge of its kind."""
        with self._lock:
            if phase is None:
                self._phases.pop((kind, namespace, name), None)
            else:
                self._phases[(kind, namespace, name)] = phase
            counts = Counter(p for (k, _, _), p in self._phases.items() if k == kind)
            self._seen.setdefault(kind, set()).update(counts)
            for phase_label in self._seen[kind]:
                self.resources.labels(kind, phase_label).set(counts.get(phase_label, 0))

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """A deleted resource leaves the gauge."""
        self.track_phase(kind, namespace, name, None)

    def observe_transition(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Stage outcome/duration when the phase turns terminal; queue wait when Admitted turns True."""
        if new.get("phase") != old.get("phase") and new.get("phase") in ("Succeeded", "Ready", "Failed"):
            outcome = "failed" if new["phase"] == "Failed" else "succeeded"
            self.outcomes.labels(kind, outcome).inc()
            start, end = parse_time(new.get("startTime")), parse_time(new.get("completionTime"))
            if start and end:
                self.stage_duration.labels(kind, outcome).observe(max(0.0, (end - start).total_seconds()))
        was, now = condition_of(old, "Admitted"), condition_of(new, "Admitted")
        if was and now and was.get("status") == "False" and now.get("status") == "True":
            queued, admitted = (
                parse_time(was.get("lastTransitionTime")),
                parse_time(now.get("lastTransitionTime")),
            )
            if queued and admitted:
                self.queue_wait.labels(kind).observe(max(0.0, (admitted - queued).total_seconds()))


def serve(metrics: Metrics, port: int) -> WSGIServer | None:
    """Start the /metrics HTTP endpoint in a daemon thread; port 0 disables it (ADACOT_METRICS_PORT).
    Returns the server (to `shutdown()`), or None when disabled."""
    if not port:
        return None
    server, _thread = start_http_server(port, registry=metrics.registry)
    return server
