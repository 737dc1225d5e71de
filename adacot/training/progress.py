"""Training steps as stage progress: a transformers TrainerCallback that feeds a ProgressMeter.

Called by adacot.training.train (imported there lazily, with transformers). Why: an SFTJob runs for hours
and `kubectl get sftjob` should show how far it is, like grading and distillation do. Items are
optimizer steps (`state.global_step` of `state.max_steps`); a resumed run starts at its checkpoint's
step. In a cluster the callback is the pod's StatusPublisher (adacot.progress.publish: rank 0 of each
node serves its progress, the operator reads node 0's; never failing training); elsewhere there is none
and the Trainer's own tqdm bar shows progress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from adacot.progress.meter import ProgressCallback, ProgressMeter


class StepProgress(TrainerCallback):
    """Reports global_step / max_steps on every optimizer step, and once more when training ends."""

    def __init__(self, report: ProgressCallback, on_end: Callable[[], None] | None = None) -> None:
        self.report = report
        self.on_end = on_end
        self.meter: ProgressMeter | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        total = max(int(state.max_steps), 0)
        self.meter = ProgressMeter(total, self.report, done=min(int(state.global_step), total))

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.meter is not None and state.global_step > self.meter.done:
            self.meter.advance(int(state.global_step) - self.meter.done)

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.on_end is not None:
            self.on_end()


def status_progress(rank: int) -> StepProgress | None:
    """The callback that reports to the resource's status, on rank 0 in a cluster; None otherwise."""
    from adacot.progress.publish import StatusPublisher

    reporter = StatusPublisher.from_env() if rank == 0 else None
    return None if reporter is None else StepProgress(reporter, on_end=reporter.close)
