"""Summaries of an experiment's per-seed figures: mean ± sd per arm, paired differences with 95 % intervals.

Callers: adacot.demo.experiment and benchmarks/method.py. Pure functions over {seed: value} maps.

Paired by seed: arm X and arm Y share a seed's SFT data order and test set, so X - Y is taken seed by
seed and its mean gets a Student-t interval with n - 1 degrees of freedom (few seeds give wide
intervals, as they should). The t quantiles are tabulated (no scipy in the runtime).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

# Two-sided 95 % quantiles of Student's t, t_{0.975, df}, for df = 1..30 (then the normal's 1.96).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """t_{0.975} with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"a t interval needs at least one degree of freedom, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def spread(values: Mapping[str, float]) -> dict[str, Any]:
    """Mean, sample sd (0 for one value), min and max of the per-seed values."""
    if not values:
        raise ValueError("no values to summarise")
    data = list(values.values())
    return {
        "mean": statistics.fmean(data),
        "sd": statistics.stdev(data) if len(data) > 1 else 0.0,
        "min": min(data),
        "max": max(data),
        "n": len(data),
    }


def paired(x: Mapping[str, float], y: Mapping[str, float]) -> dict[str, Any]:
    """Mean of x - y over the seeds both have, its sd and a 95 % t interval (None with one seed)."""
    seeds = sorted(set(x) & set(y), key=lambda s: (len(s), s))
    if not seeds:
        raise ValueError("the two arms share no seed: nothing to pair")
    diffs = {s: x[s] - y[s] for s in seeds}
    mean = statistics.fmean(diffs.values())
    if len(seeds) < 2:
        return {"mean": mean, "sd": None, "ci95": None, "per_seed": diffs, "n": 1}
    sd = statistics.stdev(diffs.values())
    half = t975(len(seeds) - 1) * sd / math.sqrt(len(seeds))
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "per_seed": diffs, "n": len(seeds)}


def verdict(name: str, result: Mapping[str, Any]) -> str:
    """One sentence on a paired difference, as measured."""
    mean, ci = result["mean"], result["ci95"]
    if ci is None:
        return f"{name}: {100 * mean:+.1f} points (one seed: no interval)."
    low, high = (100 * v for v in ci)
    if low > 0:
        reading = "the first arm is better"
    elif high < 0:
        reading = "the second arm is better"
    else:
        reading = "no difference shown (the interval contains 0)"
    return f"{name}: {100 * mean:+.1f} points, 95 % interval [{low:+.1f}, {high:+.1f}] — {reading}."
