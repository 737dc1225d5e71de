"""Progress of a long stage: done/total, rate and ETA, reported through a callback.

Callers: adacot.pipelines.grading_run (and later distillation) create a `ProgressMeter` and call
`advance`; the CLI passes a callback that drives a tqdm bar (`tqdm_callback`); the operator will read
the same figures. The rate is the average over a sliding window of recent updates, so a resumed run
(whose first `done` counts records finished by an earlier process) does not report a huge rate.

Limits: the clock is monotonic wall time; the rate is per item (question), whatever an item costs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Updates kept for the rate: long enough to smooth chunked progress, short enough to follow changes.
_WINDOW = 20


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress update."""

    done: int
    total: int
    rate: float | None
    """Items per second over the recent window; None until two updates are known."""
    eta_seconds: float | None
    """Seconds left at the current rate; None when the rate is unknown or zero."""

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.done / self.total


ProgressCallback = Callable[[ProgressUpdate], None]


class ProgressMeter:
    """Counts finished items and calls `callback` with a `ProgressUpdate` on every change."""

    def __init__(
        self,
        total: int,
        callback: ProgressCallback | None = None,
        *,
        done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0 or not 0 <= done <= total:
            raise ValueError(f"progress: need 0 <= done ({done}) <= total ({total})")
        self.total = total
        self.done = done
        self._callback = callback
        self._clock = clock
        self._marks: deque[tuple[float, int]] = deque([(clock(), done)], maxlen=_WINDOW)
        self._emit()

    def advance(self, count: int = 1) -> None:
        """Record `count` more finished items."""
        self.done = min(self.total, self.done + count)
        self._marks.append((self._clock(), self.done))
        self._emit()

    def snapshot(self) -> ProgressUpdate:
        (t0, d0), (t1, d1) = self._marks[0], self._marks[-1]
        rate = (d1 - d0) / (t1 - t0) if t1 > t0 else None
        eta = (self.total - self.done) / rate if rate else None
        return ProgressUpdate(self.done, self.total, rate, eta)

    def _emit(self) -> None:
        if self._callback is not None:
            self._callback(self.snapshot())


def tqdm_callback(bar: Any) -> ProgressCallback:
    """A callback that moves a tqdm bar to each report's `done` (tqdm computes its own rate and ETA)."""

    def update(report: ProgressUpdate) -> None:
        bar.total = report.total
        bar.n = report.done
        bar.refresh()

    return update
