"""A PNG of the training loss against the optimizer step, written into SFTJob artifacts.

Callers: adacot.pipelines.sft_job. A resumed run's curve is one line: the Trainer's log
history carries the steps logged before the restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from adacot.plots.canvas import png


def write_loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    path: str | Path,
    *,
    title: str,
    resumed_at: int | None = None,
    width_px: int = 800,
    height_px: int = 480,
) -> Path:
    """Draw loss per step (a dashed line marks where a resumed run picked up); returns the PNG's path."""
    if len(steps) != len(losses) or not steps:
        raise ValueError(
            f"loss curve: need matching, non-empty steps and losses ({len(steps)}, {len(losses)})"
        )
    with png(path, title, width_px, height_px) as axes:
        axes.plot(list(steps), list(losses), marker="o", markersize=3, color="#4c72b0")
        if resumed_at is not None:
            axes.axvline(resumed_at, color="#c44e52", linestyle="--", label=f"resumed at step {resumed_at}")
            axes.legend()
        axes.set_xlabel("optimizer step")
        axes.set_ylabel("training loss (assistant tokens)")
        axes.grid(alpha=0.3)
    return Path(path)
