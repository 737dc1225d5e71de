"""One PNG figure of an exact pixel size: what every chart of adacot.plots draws on.

matplotlib runs with the Agg backend (no display in a pod) and is imported only when a chart is drawn,
so importing adacot.plots costs nothing. The image is exactly `width_px` x `height_px` (no tight
bounding box, which would change the size with the labels); the figure is closed even when drawing fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DPI = 100
LEVEL_AXIS = "difficulty level (higher is harder)"


@contextmanager
def png(path: str | Path, title: str, width_px: int, height_px: int) -> Iterator[Any]:
    """Axes to draw on; the titled figure is written to `path` when the block ends without error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if width_px < 100 or height_px < 100:
        raise ValueError(f"chart size {width_px}x{height_px}: need at least 100x100 pixels")
    figure, axes = plt.subplots(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    try:
        yield axes
        axes.set_title(title, fontsize=10)
        figure.savefig(Path(path), format="png", dpi=DPI)
    finally:
        plt.close(figure)
