"""Where the tests find the project's real benchmark data (MATH-500, AIME, AMC, GSM8K, MBPP+).

`ADACOT_SHARED_DATA` when set, else `../shared/data` beside the repository (the layout of the
development machines and CI). Tests that read it are marked with `needs_shared_data`, which skips
them with a clear reason where the files are absent instead of failing on a missing path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADACOT_SHARED_DATA", REPO.parent / "shared" / "data"))
MATH500 = SHARED_DATA / "math500.jsonl"
MBPPPLUS = SHARED_DATA / "mbppplus.jsonl"

needs_shared_data = pytest.mark.skipif(
    not MATH500.exists(), reason=f"benchmark data not found at {SHARED_DATA} (set ADACOT_SHARED_DATA)"
)
