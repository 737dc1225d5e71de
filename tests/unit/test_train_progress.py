"""StepProgress: optimizer steps as stage progress, from the real transformers callback hooks."""

from __future__ import annotations

import json
import urllib.request

import pytest
from transformers import TrainerControl, TrainerState

from adacot.progress.meter import ProgressUpdate
from adacot.training.progress import StepProgress, status_progress


def test_steps_are_reported_from_the_resumed_step_to_the_end() -> None:
    reports: list[ProgressUpdate] = []
    ended: list[bool] = []
    callback = StepProgress(reports.append, on_end=lambda: ended.append(True))
    state, control = TrainerState(max_steps=10, global_step=4), TrainerControl()  # resumed at step 4
    callback.on_train_begin(None, state, control)
    for step in (5, 6, 6, 10):  # a repeated step (gradient accumulation's hook order) counts once
        state.global_step = step
        callback.on_step_end(None, state, control)
    callback.on_train_end(None, state, control)
    assert [(r.done, r.total) for r in reports] == [(4, 10), (5, 10), (6, 10), (10, 10)]
    assert reports[-1].percent == 100.0 and ended == [True]


def test_only_rank_0_in_a_cluster_serves_its_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pod (ADACOT_PROGRESS_PORT set) rank 0's steps are served at GET /progress for the operator
    to read; other ranks and laptops serve nothing."""
    monkeypatch.delenv("ADACOT_PROGRESS_PORT", raising=False)
    assert status_progress(0) is None  # a laptop: the Trainer's own bar only
    monkeypatch.setenv("ADACOT_PROGRESS_PORT", "0")  # the OS picks a free port
    monkeypatch.setenv("ADACOT_POD_IP", "127.0.0.1")
    assert status_progress(1) is None
    found = status_progress(0)
    assert found is not None
    state, control = TrainerState(max_steps=8, global_step=0), TrainerControl()
    found.on_train_begin(None, state, control)
    state.global_step = 2
    found.on_step_end(None, state, control)
    server = found.report.server  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/progress", timeout=5) as answer:
            served = json.loads(answer.read())
    finally:
        server.stop()
    assert (served["done"], served["total"], served["percent"]) == (2, 8, 25.0)
