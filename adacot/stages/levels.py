"""The grading rules: from step scores and verdicts to a question's difficulty level, and from levels to
P_eval. Pure functions, no I/O; the grading stage, the bank stage and the distribution code call them.

Level convention (see adacot.api.grading_run): 0 = solved; unsolved questions get 1..5 and a HIGHER
LEVEL IS HARDER. The paper says "a lower PRM score means a harder question"; here the score in [0, 1]
says how close the model's trace came to a right answer, so the highest scores among unsolved questions
land in level 1 and the lowest in level 5.

Missing data is data, not an exception: a trace with no scored steps (empty response, every step cut by
truncation, an unparseable judge reply) aggregates to None, and `aggregate_samples` skips None. What
raises ValueError is input that can only come from a bug or a bad spec: scores outside [0, 1] or NaN,
unknown rule names, empty sample lists, levels outside 0..5.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

from adacot.api.grading_run import LevelMapping
from adacot.artifacts.rows import Verdict

StepAggregation = Literal["min", "mean", "last", "product"]
SampleAggregation = Literal["mean", "min", "max"]
SolvedRule = Literal["any", "majority", "threshold"]
LEVELS = (0, 1, 2, 3, 4, 5)
UNSOLVED_LEVELS = 5


def _checked(scores: Iterable[float], what: str) -> list[float]:
    values = list(scores)
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s) or not 0.0 <= s <= 1.0:
            raise ValueError(f"{what} must be numbers in [0, 1], got {s!r}")
    return [float(s) for s in values]


def aggregate_steps(scores: Sequence[float], how: StepAggregation = "min") -> float | None:
    """One score for a trace from its step scores; None when no step was scored.

    min (default, Qwen2.5-Math-PRM practice): a trace is as good as its worst step. mean: the average
    step. last: the final step's score (some PRMs are trained so the last step judges the whole answer).
    product: the probability that every step is right, treating steps as independent (it falls with the
    number of steps, so long traces look harder).
    """
    values = _checked(scores, "step scores")
    if not values:
        return None
    if how == "min":
        return min(values)
    if how == "mean":
        return math.fsum(values) / len(values)
    if how == "last":
        return values[-1]
    if how == "product":
        return math.prod(values)
    raise ValueError(f"step aggregation must be min, mean, last or product, not {how!r}")


def aggregate_samples(scores: Sequence[float | None], how: SampleAggregation = "mean") -> float | None:
    """One score for a question from the scores of its unsolved samples; unscored samples (None) are
    skipped, and a question none of whose samples was scored gets None (the stage reports it)."""
    values = _checked((s for s in scores if s is not None), "sample scores")
    if how not in ("mean", "min", "max"):
        raise ValueError(f"sample aggregation must be mean, min or max, not {how!r}")
    if not values:
        return None
    if how == "mean":
        return math.fsum(values) / len(values)
    return min(values) if how == "min" else max(values)


def _flag(verdict: bool | Verdict | None) -> bool | None:
    return verdict.correct if isinstance(verdict, Verdict) else verdict


def pass_rate(verdicts: Sequence[bool | Verdict | None]) -> float:
    """Share of samples judged correct. Undecided verdicts (None: the verifier could not tell) count in
    the denominator but never as correct: a sample nobody could verify did not demonstrably solve it."""
    if not verdicts:
        raise ValueError("pass rate of no samples: a question needs at least one sample")
    return sum(1 for v in verdicts if _flag(v) is True) / len(verdicts)


def is_solved(
    verdicts: Sequence[bool | Verdict | None], rule: SolvedRule = "any", threshold: float = 0.5
) -> bool:
    """Whether a question counts as solved (level 0) under `rule`.

    any: at least one sample correct. majority: strictly more than half of all samples correct (2 of 4
    is not a majority). threshold: pass rate >= `threshold`. Undecided verdicts count as not correct
    (see `pass_rate`); the stage marks a question whose verdicts are all undecided as ungradable before
    asking this.
    """
    rate = pass_rate(verdicts)
    if rule == "any":
        return rate > 0
    if rule == "majority":
        return 2 * sum(1 for v in verdicts if _flag(v) is True) > len(verdicts)
    if rule == "threshold":
        if not 0 < threshold <= 1:
            raise ValueError(f"solved threshold must be in (0, 1], got {threshold}")
        return rate >= threshold
    raise ValueError(f"solved rule must be any, majority or threshold, not {rule!r}")


def level_from_cuts(score: float, cuts: Sequence[float | None]) -> int:
    """Level 1..5 of an unsolved question's score given four increasing cut points c1..c4.

    score >= c4 is level 1, [c3, c4) level 2, [c2, c3) level 3, [c1, c2) level 4, < c1 level 5: each cut
    the score reaches makes the question one level easier. A None cut is unreachable (used by quantile
    cuts when no question landed at that level or better).
    """
    (value,) = _checked([score], "a score")
    if len(cuts) != UNSOLVED_LEVELS - 1:
        raise ValueError(f"need {UNSOLVED_LEVELS - 1} cut points, got {len(cuts)}")
    reached = sum(1 for c in cuts if c is not None and value >= c)
    return UNSOLVED_LEVELS - reached


def level_of(score: float, mapping: LevelMapping) -> int:
    """Level 1..5 of one score under fixed bins (`mapping.cut_points`). Quantile mode depends on the
    whole run's scores: use `levels_for`."""
    if mapping.mode != "bins":
        raise ValueError("level_of maps one score by fixed bins; quantile mode needs levels_for(scores)")
    return level_from_cuts(score, mapping.cut_points)


def quantile_levels(scores: Sequence[float]) -> list[int]:
    """Levels 1..5 splitting the run's unsolved scores into five groups of (nearly) equal size.

    Each score is placed by its mid-rank from the top, p = (#higher + #equal / 2) / n, and gets level
    1 + floor(5 p). So: ten distinct scores make five pairs; equal scores always share a level (ties
    are decided by value, never by input order); with fewer scores than levels they spread
    symmetrically over 1..5 (one score: level 3; two: 2 and 4; three: 1, 3, 5). Integer arithmetic
    keeps it exact.
    """
    values = _checked(scores, "scores")
    n = len(values)
    level_by_value: dict[float, int] = {}
    higher = 0
    # One pass over the distinct values from the top: O(n log n) for pools of any size.
    for value, equal in sorted(Counter(values).items(), reverse=True):
        rank = UNSOLVED_LEVELS * (2 * higher + equal) // (2 * n)
        level_by_value[value] = 1 + min(UNSOLVED_LEVELS - 1, rank)
        higher += equal
    return [level_by_value[s] for s in values]


def quantile_cuts(scores: Sequence[float]) -> list[float | None]:
    """The cut points c1..c4 that quantile mode effectively used, for the manifest: c_j is the lowest
    score placed at level 5 - j or easier (None when no score made it that far), so
    `level_from_cuts(s, quantile_cuts(scores)) == quantile_levels(scores)[i]` for every s = scores[i]."""
    values = _checked(scores, "scores")
    levels = quantile_levels(values)
    cuts: list[float | None] = []
    for j in range(1, UNSOLVED_LEVELS):
        reached = [s for s, lv in zip(values, levels, strict=True) if lv <= UNSOLVED_LEVELS - j]
        cuts.append(min(reached) if reached else None)
    return cuts


def effective_cuts(scores: Sequence[float], mapping: LevelMapping) -> list[float | None]:
    """The cut points c1..c4 a run's levels were made with: the fixed bins, or the quantile cuts fitted on
    this run's unsolved `scores`. Recorded in the run's summary so that a bank can re-level other scores
    on the same scale (DifficultyBank levels.cutPointsFrom)."""
    return quantile_cuts(scores) if mapping.mode == "quantiles" else list(mapping.cut_points)


def levels_for(scores: Sequence[float], mapping: LevelMapping) -> list[int]:
    """Levels 1..5 of a run's unsolved scores under `mapping` (fixed bins or this run's quantiles)."""
    if mapping.mode == "quantiles":
        return quantile_levels(scores)
    return [level_from_cuts(s, mapping.cut_points) for s in scores]


def pass_rate_score(rate: float, rule: SolvedRule = "any", threshold: float = 0.5) -> float:
    """Score in [0, 1] of an unsolved question for the passRate grader: how far its pass rate got
    towards the rate that would have made it solved under `rule`.

    threshold: rate / threshold. majority: rate / 0.5 (a rate of exactly one half is unsolved and scores
    1). any: every unsolved question has rate 0 and scores 0, so all land in level 5 — use majority or
    threshold with passRate when levels 1..4 should mean something.
    """
    (value,) = _checked([rate], "a pass rate")
    if is_rate_solved(value, rule, threshold):
        raise ValueError(f"pass rate {value} counts as solved under rule {rule}: it has level 0, no score")
    if rule == "any":
        return 0.0
    return min(1.0, value / (0.5 if rule == "majority" else threshold))


def is_rate_solved(rate: float, rule: SolvedRule, threshold: float) -> bool:
    """`is_solved` expressed on a pass rate (majority: strictly above one half)."""
    if rule == "any":
        return rate > 0
    if rule == "majority":
        return rate > 0.5
    if rule == "threshold":
        return rate >= threshold
    raise ValueError(f"solved rule must be any, majority or threshold, not {rule!r}")


def pass_rate_levels(
    rates: Sequence[float], mapping: LevelMapping, rule: SolvedRule = "any", threshold: float = 0.5
) -> list[int]:
    """Levels 0..5 for the passRate grader: solved rates are level 0, the rest are scored by
    `pass_rate_score` and mapped by `mapping` (quantiles are taken over the unsolved ones only)."""
    unsolved = [i for i, r in enumerate(rates) if not is_rate_solved(r, rule, threshold)]
    scored = levels_for([pass_rate_score(rates[i], rule, threshold) for i in unsolved], mapping)
    out = [0] * len(rates)
    for i, lv in zip(unsolved, scored, strict=True):
        out[i] = lv
    return out


def level_histogram(levels: Iterable[int | None]) -> dict[int, int]:
    """Count of questions per level, every level 0..5 present (zeros included). Ungradable questions
    (level None) are not part of the histogram; the stage reports them separately."""
    counts = dict.fromkeys(LEVELS, 0)
    for lv in levels:
        if lv is None:
            continue
        if lv not in counts or isinstance(lv, bool):
            raise ValueError(f"levels are integers 0..5, got {lv!r}")
        counts[lv] += 1
    return counts


def distribution(levels: Iterable[int | None]) -> dict[int, float]:
    """P_eval: the share of each level 0..5 among the gradable questions (shares sum to 1; counts come
    from `level_histogram`). Raises when no question has a level: there is no distribution to follow."""
    counts = level_histogram(levels)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no graded question has a level: the level distribution is undefined")
    return {lv: c / total for lv, c in counts.items()}
