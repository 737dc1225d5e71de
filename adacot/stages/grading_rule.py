"""Grading rules: what must agree for the levels of two graded sets to mean the same thing.

A question's level depends on the model graded, on when a question counts as solved, on how an unsolved
question's score is made (grader method, PRM, aggregations) and on the cut points that turn scores into
levels 1..5. Two graded sets share one level scale only when all of these agree. That is checked twice:
the bank stage, before it re-levels its sources with another run's cut points (DifficultyBank
levels.cutPointsFrom), and the distillation stage, before it samples a bank to the level shares of a
GradingRun (distribution.fromGradingRun, P_eval).

A rule is a flat dict {field: value} read from a GradingRun artifact (the spec in its MANIFEST.json and
its summary.json), so that differences can be named field by field. Callers: adacot.pipelines
.difficulty_bank and .distillation_job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from adacot.api.grading_run import GradingRunSpec
from adacot.api.stage_pod import ValidationFailed

LEVELS = "grader.levels cut points"
"""The rule field holding the four cut points the levels were made with (None: not recorded)."""
Rule = dict[str, Any]


def run_rule(spec: Mapping[str, Any], summary: Mapping[str, Any]) -> Rule:
    """The rule of a GradingRun artifact: its spec as MANIFEST.json holds it, and its summary.json (the
    cut points a quantile run fitted are only there). Fields that cannot change a level are None."""
    parsed = GradingRunSpec.model_validate(spec)
    grader = parsed.grader
    prm = grader.prm if grader.method == "prm" else None
    judge = prm.endpoint if prm is not None else None
    return {
        "model": parsed.model.identity(),
        "grader.method": grader.method,
        "grader.solvedRule": grader.solved_rule,
        "grader.solvedThreshold": grader.solved_threshold if grader.solved_rule == "threshold" else None,
        "grader.prm.kind": prm.kind if prm is not None else None,
        "grader.prm.model": prm.model.identity() if prm is not None and prm.model is not None else None,
        "grader.prm.endpoint": f"{judge.url} ({judge.model})" if judge is not None else None,
        "grader.prm.aggregation": prm.aggregation if prm is not None else None,
        "grader.prm.sampleAggregation": prm.sample_aggregation if prm is not None else None,
        LEVELS: recorded_cuts(summary)
        if grader.levels.mode == "quantiles"
        else list(grader.levels.cut_points),
    }


def recorded_cuts(summary: Mapping[str, Any]) -> list[float | None] | None:
    """The `cut_points` a summary records (four numbers or nulls), or None when it has none."""
    cuts = summary.get("cut_points")
    if not isinstance(cuts, list) or len(cuts) != 4:
        return None
    if not all(c is None or (isinstance(c, (int, float)) and not isinstance(c, bool)) for c in cuts):
        return None
    return [None if c is None else float(c) for c in cuts]


def differences(a: Mapping[str, Any], b: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """The fields both rules have whose values differ, in `a`'s order."""
    left_out = set(skip)
    return [key for key in a if key not in left_out and key in b and a[key] != b[key]]


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "not recorded" if key == LEVELS else "none"
    return repr(value)


Named = tuple[str, Mapping[str, Any]]
"""A rule with the short name its side is called by in messages."""


def check_same(what: str, a: Named, b: Named, skip: Iterable[str] = ()) -> None:
    """ValidationFailed '<what>: field: A has x, B has y; ...' naming every field the rules differ in."""
    (a_name, a_rule), (b_name, b_rule) = a, b
    fields = differences(a_rule, b_rule, skip)
    if fields:
        listing = "; ".join(
            f"{key}: {a_name} has {_shown(key, a_rule[key])}, {b_name} has {_shown(key, b_rule[key])}"
            for key in fields
        )
        raise ValidationFailed(f"{what}: {listing}")
