"""A PNG comparing the target level shares of a DistillationJob with the shares it achieved.

Callers: adacot.pipelines.distillation_job. Grouped bars per level (target, sampled, kept), the shares
printed as percentages.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adacot.plots.canvas import LEVEL_AXIS, png

_COLORS = ("#4c72b0", "#dd8452", "#55a868")


def write_distribution_chart(
    series: Mapping[str, Mapping[int, float]],
    path: str | Path,
    *,
    title: str,
    width_px: int = 800,
    height_px: int = 480,
) -> Path:
    """Draw each named series (level → share in [0, 1]) as a group of bars per level 0..5."""
    if not series:
        raise ValueError("distribution chart: no series to draw")
    levels = list(range(6))
    width = 0.8 / len(series)
    with png(path, title, width_px, height_px) as axes:
        for number, (name, shares) in enumerate(series.items()):
            xs = [lv + (number - (len(series) - 1) / 2) * width for lv in levels]
            values = [100 * shares.get(lv, 0.0) for lv in levels]
            bars = axes.bar(xs, values, width, label=name, color=_COLORS[number % len(_COLORS)])
            axes.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7)
        axes.set_xticks(levels, ["0\nsolved", "1", "2", "3", "4", "5\nhardest"])
        axes.set_xlabel(LEVEL_AXIS)
        axes.set_ylabel("share of questions (%)")
        axes.legend()
        axes.figure.subplots_adjust(bottom=0.2, top=0.88)
    return Path(path)
