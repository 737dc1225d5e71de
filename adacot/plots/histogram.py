"""A PNG bar chart of questions per difficulty level, written into bank and grading artifacts.

Callers: adacot.pipelines.difficulty_bank. matplotlib runs with the Agg backend (no display in a pod)
and is imported inside the function, so importing this module costs nothing. The image is exactly
`width_px` x `height_px` (no tight bounding box, which would change the size with the labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

_DPI = 100
_LEVEL_NAMES = {0: "0\nsolved", 1: "1", 2: "2", 3: "3", 4: "4", 5: "5\nhardest"}


def write_level_histogram(
    counts: Mapping[int, int], path: str | Path, *, title: str, width_px: int = 800, height_px: int = 480
) -> Path:
    """Draw `counts` (level → questions) as bars with their counts on top; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if width_px < 100 or height_px < 100:
        raise ValueError(f"histogram size {width_px}x{height_px}: need at least 100x100 pixels")
    levels = sorted(counts)
    figure, axes = plt.subplots(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    try:
        bars = axes.bar(
            [_LEVEL_NAMES.get(lv, str(lv)) for lv in levels], [counts[lv] for lv in levels], color="#4c72b0"
        )
        axes.bar_label(bars, labels=[str(counts[lv]) for lv in levels])
        axes.set_xlabel("difficulty level (higher is harder)")
        axes.set_ylabel("questions")
        axes.set_title(title, fontsize=10)
        figure.subplots_adjust(bottom=0.2, top=0.88)
        target = Path(path)
        figure.savefig(target, format="png", dpi=_DPI)
    finally:
        plt.close(figure)
    return target
