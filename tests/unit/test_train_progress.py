"""StepProgress: optimizer steps as stage progress, from the real transformers callback hooks."""

from __future__ import annotations

from pathlib import Path

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


def test_only_rank_0_in_a_cluster_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADACOT_STATUS_PATH", raising=False)
    assert status_progress(0) is None  # a laptop: the Trainer's own bar only
    monkeypatch.setenv("ADACOT_STATUS_PATH", "/apis/adacot.dev/v1alpha1/namespaces/ns/sftjobs/s/status")
    monkeypatch.setenv("ADACOT_API_SERVER", "http://127.0.0.1:9")
    monkeypatch.setenv("ADACOT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    found = status_progress(0)
    assert found is not None and getattr(found.report, "url", "").endswith("/sftjobs/s/status")
    assert status_progress(1) is None
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")  # node 1 of a multi-node job
    assert status_progress(0) is None
