"""Resuming SFT picks the newest checkpoint that was written to the end."""

from __future__ import annotations

from pathlib import Path

from adacot.training.train import CHECKPOINTS, last_checkpoint


def test_resume_skips_a_checkpoint_the_kill_left_half_written(tmp_path: Path) -> None:
    assert last_checkpoint(tmp_path) is None
    for step, complete in ((3, True), (12, True), (15, False)):
        folder = tmp_path / CHECKPOINTS / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / CHECKPOINTS / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / CHECKPOINTS / "checkpoint-12")
