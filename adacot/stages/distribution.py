"""Target level distributions for sampling: P_eval, P_prior and explicit tables.

Callers: `adacot sample` (adacot.cli.sample), the distillation stage (through `resolve`), and
adacot.stages.sample, which turns a `Distribution` into integer counts. Pure: no file I/O; the caller
reads a grading run's summary.json (or its rows) and hands it in.

How level 0 (solved, "easy") is treated, and how it maps to the paper's wording (arXiv 2504.11919):

- P_eval (`from_grading_summary`): the share of every level 0..5 when the base model S is graded on an
  evaluation set, level 0 included: the paper fits the training set to the difficulty S meets on the
  evaluation set, and the questions S already answers correctly are part of that picture. With
  `exclude_easy` level 0 gets share 0 and levels 1..5 are renormalised (only the questions S cannot
  yet solve are distilled). The counts behind the shares are kept, level 0's included.
- P_prior (`from_prior`): five curriculum weights over the unsolved levels 1..5, strictly decreasing
  (e.g. 5:4:3:2:1). The paper's rule is "a lower PRM score means a harder question" and its weights
  fall as questions get harder; in adacot a higher level number is always harder (level 1 = the
  unsolved question whose trace came closest to right), so the weights fall from level 1 to level 5.
  Level 0 gets `easy_weight`, 0 by default: the prior is about what S cannot yet do. `exclude_easy`
  forces level 0 to 0 here too, since that is what the flag plainly says.
- Table (`from_table`): explicit non-negative weights per level 0..5 (missing levels weigh 0), level 0
  included unless `exclude_easy`.

Every constructor normalises weights to shares summing to 1 and raises ValueError for negative, NaN or
infinite weights, unknown levels, or nothing left to sample (all zero). A level with share 0 is
excluded: the sampler never draws from it, not even to make up another level's shortfall. Limits:
whether the bank holds the levels a distribution asks for is known only when sampling (see
adacot.stages.sample's shortfall).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adacot.api.distillation_job import DistributionSpec, PriorSpec
from adacot.artifacts.rows import MAX_LEVEL, MIN_LEVEL, GradedQuestion
from adacot.stages import levels

LEVELS = tuple(range(MIN_LEVEL, MAX_LEVEL + 1))
#: Shares may miss 1 by float rounding after normalisation; anything further off is a bug.
SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Distribution:
    """Target share of each level 0..5 among the sampled questions (shares sum to 1)."""

    shares: Mapping[int, float]
    """Share per level, every level 0..5 present (zeros included)."""
    kind: str
    """P_eval, P_prior or table: where the shares came from."""
    counts: Mapping[int, int] | None = None
    """Questions per level behind P_eval (level 0 included even when excluded); None for the others."""
    detail: str = ""
    """One line on how the shares were made (weights, exclusion), for reports."""

    def __post_init__(self) -> None:
        if sorted(self.shares) != list(LEVELS):
            raise ValueError(f"a distribution needs a share for each level 0..5, got {sorted(self.shares)}")
        bad = [s for s in self.shares.values() if not math.isfinite(s) or s < 0]
        if bad or abs(math.fsum(self.shares.values()) - 1) > SUM_TOLERANCE:
            raise ValueError(f"shares must be non-negative and sum to 1, got {dict(self.shares)}")

    def levels_wanted(self) -> list[int]:
        """Levels with a positive share, easiest first."""
        return [lv for lv in LEVELS if self.shares[lv] > 0]

    def as_json(self) -> dict[str, Any]:
        """The distribution for a manifest (string level keys, as JSON needs)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "shares": {str(lv): self.shares[lv] for lv in LEVELS},
            "detail": self.detail,
        }
        if self.counts is not None:
            out["counts"] = {str(lv): self.counts[lv] for lv in LEVELS}
        return out

    def describe(self) -> str:
        """One human line: kind, detail, and each level's share (with its count for P_eval)."""
        parts = []
        for lv in LEVELS:
            count = f" (n={self.counts[lv]})" if self.counts is not None else ""
            parts.append(f"L{lv} {100 * self.shares[lv]:.1f}%{count}")
        head = f"{self.kind} [{self.detail}]" if self.detail else self.kind
        return f"{head}: " + ", ".join(parts)


def normalise(weights: Mapping[int, float], what: str) -> dict[int, float]:
    """Shares from non-negative weights over levels 0..5 (missing levels weigh 0)."""
    unknown = sorted(str(lv) for lv in weights if lv not in LEVELS)
    if unknown:
        raise ValueError(f"{what}: levels are 0 to 5, got {', '.join(unknown)}")
    for lv, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"{what}: weight of level {lv} must be a finite number >= 0, got {w!r}")
    total = math.fsum(weights.values())
    if total <= 0:
        raise ValueError(f"{what}: every weight is zero, there is nothing to sample")
    return {lv: weights.get(lv, 0) / total for lv in LEVELS}


def _drop_easy(weights: Mapping[int, float], exclude_easy: bool) -> dict[int, float]:
    return {lv: (0.0 if exclude_easy and lv == 0 else float(w)) for lv, w in weights.items()}


def _summary_counts(summary: Mapping[str, Any]) -> dict[int, int]:
    raw = summary.get("level_counts")
    if not isinstance(raw, Mapping):
        raise ValueError("grading summary has no level_counts: is it a GradingRun's summary.json?")
    counts = dict.fromkeys(LEVELS, 0)
    for key, value in raw.items():
        level = int(key) if str(key).isdigit() else -1
        if level not in counts or isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"grading summary: level_counts[{key!r}] = {value!r} is not a count of 0..5")
        counts[level] = value
    return counts


def from_grading_summary(
    graded: Mapping[str, Any] | Iterable[GradedQuestion], *, exclude_easy: bool = False
) -> Distribution:
    """P_eval from a grading run: its summary.json dict (`level_counts`) or its GradedQuestion rows
    (ungradable rows, level None, are left out as the grading summary leaves them out)."""
    if isinstance(graded, Mapping):
        counts = _summary_counts(graded)
    else:
        counts = levels.level_histogram(row.level for row in graded)
    if sum(counts.values()) == 0:
        raise ValueError("the grading run has no graded question: P_eval is undefined")
    if exclude_easy and sum(counts[lv] for lv in LEVELS if lv != 0) == 0:
        raise ValueError(
            f"every graded question is level 0 ({counts[0]} solved): with excludeEasy nothing is left"
        )
    weights = _drop_easy({lv: float(c) for lv, c in counts.items()}, exclude_easy)
    shares = normalise(weights, "P_eval")
    detail = f"{sum(counts.values())} graded" + (", level 0 excluded" if exclude_easy else "")
    return Distribution(shares=shares, kind="P_eval", counts=counts, detail=detail)


def from_prior(prior: PriorSpec, *, exclude_easy: bool = False) -> Distribution:
    """P_prior: `prior.weights` over levels 1..5 (strictly decreasing), `prior.easy_weight` for level 0."""
    weights = {0: prior.easy_weight, **{lv: w for lv, w in zip(LEVELS[1:], prior.weights, strict=True)}}
    shares = normalise(weights, "distribution.prior")  # also guards model_construct'ed specs
    if any(a <= b for a, b in zip(prior.weights, prior.weights[1:], strict=False)):
        raise ValueError("distribution.prior.weights must be strictly decreasing (level 1 weighs most)")
    if exclude_easy:
        shares = normalise(_drop_easy(shares, True), "distribution.prior with level 0 excluded")
    ratio = ":".join(f"{w:g}" for w in prior.weights)
    easy = "level 0 excluded" if exclude_easy else f"easy weight {prior.easy_weight:g}"
    return Distribution(shares=shares, kind="P_prior", detail=f"weights {ratio}, {easy}")


def from_table(
    table: Mapping[str, float] | Mapping[int, float], *, exclude_easy: bool = False
) -> Distribution:
    """An explicit table of weights per level ("0".."5" or 0..5 keys), normalised to shares."""
    weights: dict[int, float] = {}
    for key, value in table.items():
        text = str(key).strip()
        if not text.isdigit() or int(text) not in LEVELS:
            raise ValueError(f"distribution.table keys must be levels 0 to 5, got {key!r}")
        weights[int(text)] = value
    shares = normalise(weights, "distribution.table")
    if exclude_easy:
        shares = normalise(_drop_easy(shares, True), "distribution.table with level 0 excluded")
    listed = ", ".join(f"{lv}={weights[lv]:g}" for lv in sorted(weights))
    return Distribution(
        shares=shares, kind="table", detail=listed + (", level 0 excluded" if exclude_easy else "")
    )


def resolve(spec: DistributionSpec, *, eval_summary: Mapping[str, Any] | None = None) -> Distribution:
    """The Distribution a DistillationJob's spec asks for; `eval_summary` is the summary.json of the
    GradingRun named by `fromGradingRun` (the caller finds its artifact)."""
    if spec.from_grading_run is not None:
        if eval_summary is None:
            raise ValueError(
                f"distribution.fromGradingRun {spec.from_grading_run.name!r}: its grading summary is "
                "needed (the run's summary.json) and was not given"
            )
        return from_grading_summary(eval_summary, exclude_easy=spec.exclude_easy)
    if spec.prior is not None:
        return from_prior(spec.prior, exclude_easy=spec.exclude_easy)
    if spec.table is not None:
        return from_table(spec.table, exclude_easy=spec.exclude_easy)
    raise ValueError("distribution: set exactly one of fromGradingRun, prior, table")
