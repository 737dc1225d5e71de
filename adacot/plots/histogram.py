"""A PNG bar chart of questions per difficulty level, written into bank and grading artifacts.

Callers: adacot.pipelines.difficulty_bank.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adacot.plots.canvas import LEVEL_AXIS, png

_LEVEL_NAMES = {0: "0\nsolved", 1: "1", 2: "2", 3: "3", 4: "4", 5: "5\nhardest"}


def write_level_histogram(
    counts: Mapping[int, int], path: str | Path, *, title: str, width_px: int = 800, height_px: int = 480
) -> Path:
    """Draw `counts` (level → questions) as bars with their counts on top; returns the PNG's path."""
    levels = sorted(counts)
    with png(path, title, width_px, height_px) as axes:
        bars = axes.bar(
            [_LEVEL_NAMES.get(lv, str(lv)) for lv in levels], [counts[lv] for lv in levels], color="#4c72b0"
        )
        axes.bar_label(bars, labels=[str(counts[lv]) for lv in levels])
        axes.set_xlabel(LEVEL_AXIS)
        axes.set_ylabel("questions")
        axes.figure.subplots_adjust(bottom=0.2, top=0.88)
    return Path(path)
