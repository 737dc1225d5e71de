"""The operator's Prometheus metrics: names from the operator contract, values from reconciles and
status transitions, served over real HTTP."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from adacot_operator.metrics import Metrics, serve
from prometheus_client import CollectorRegistry


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    found: float | None = metrics.registry.get_sample_value(name, labels)
    return found


def cond(type_: str, status: str, at: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": "R", "lastTransitionTime": at}


def test_reconcile_counts_errors_and_durations() -> None:
    m = Metrics(CollectorRegistry())
    with m.reconciling("GradingRun"):
        pass
    with pytest.raises(RuntimeError), m.reconciling("GradingRun"):
        raise RuntimeError("api down")
    assert value(m, "adacot_reconcile_total", kind="GradingRun", result="success") == 1
    assert value(m, "adacot_reconcile_total", kind="GradingRun", result="error") == 1
    assert value(m, "adacot_reconcile_errors_total", kind="GradingRun") == 1
    assert value(m, "adacot_reconcile_duration_seconds_count", kind="GradingRun") == 2


def test_resources_by_phase_follow_each_resource() -> None:
    m = Metrics(CollectorRegistry())
    m.track_phase("SFTJob", "ml", "a", "Running")
    m.track_phase("SFTJob", "ml", "b", "Running")
    m.track_phase("SFTJob", "ml", "a", "Succeeded")
    assert value(m, "adacot_resources", kind="SFTJob", phase="Running") == 1
    m.forget("SFTJob", "ml", "b")
    assert value(m, "adacot_resources", kind="SFTJob", phase="Running") == 0
    assert value(m, "adacot_resources", kind="SFTJob", phase="Succeeded") == 1


def test_stage_outcome_duration_and_queue_wait_from_transitions() -> None:
    m = Metrics(CollectorRegistry())
    queued = {"phase": "Queued", "conditions": [cond("Admitted", "False", "2026-01-01T10:00:00Z")]}
    admitted = {"phase": "Running", "conditions": [cond("Admitted", "True", "2026-01-01T10:02:00Z")]}
    m.observe_transition("GradingRun", queued, admitted)
    assert value(m, "adacot_queue_wait_seconds_sum", kind="GradingRun") == 120
    done = {**admitted, "phase": "Succeeded", "startTime": "2026-01-01T10:02:00Z",
            "completionTime": "2026-01-01T11:02:00Z"}  # fmt: skip
    m.observe_transition("GradingRun", admitted, done)
    m.observe_transition("GradingRun", done, done)  # no second count for an unchanged phase
    assert value(m, "adacot_stage_outcomes_total", kind="GradingRun", outcome="succeeded") == 1
    assert value(m, "adacot_stage_duration_seconds_sum", kind="GradingRun", outcome="succeeded") == 3600


def test_metrics_endpoint_serves_the_contract_names() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = Metrics(CollectorRegistry())
    with m.reconciling("DifficultyBank"):
        pass
    server = serve(m, port)
    assert server is not None and serve(m, 0) is None
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'adacot_reconcile_total{kind="DifficultyBank",result="success"} 1.0' in text
    assert "adacot_reconcile_duration_seconds_bucket" in text
