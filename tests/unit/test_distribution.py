"""The distribution constructors: P_eval from a grading summary or rows, P_prior from curriculum weights,
explicit tables, `resolve` from a DistillationJob's spec, and every validation error, as tables."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from adacot.api.common import TaskType
from adacot.api.distillation_job import DistributionSpec, PriorSpec
from adacot.artifacts.rows import GradedQuestion, Question
from adacot.stages.distribution import Distribution, from_grading_summary, from_prior, from_table, resolve

SUMMARY = {"level_counts": {"0": 50, "1": 20, "2": 10, "3": 10, "4": 5, "5": 5}}


def shares(d: Distribution) -> list[float]:
    return [round(d.shares[lv], 12) for lv in range(6)]


def graded(qid: str, level: int | None) -> GradedQuestion:
    q = Question(id=qid, task=TaskType.math, problem=f"q{qid}", answer="1", source="s")
    if level is None:
        return GradedQuestion(question=q, reason="unverifiable reference")
    return GradedQuestion(question=q, level=level, solved=level == 0)


@pytest.mark.parametrize(
    ("exclude_easy", "expected"),
    [
        (False, [0.5, 0.2, 0.1, 0.1, 0.05, 0.05]),
        (True, [0.0, 0.4, 0.2, 0.2, 0.1, 0.1]),
    ],
)
def test_p_eval_from_summary(exclude_easy: bool, expected: list[float]) -> None:
    d = from_grading_summary(SUMMARY, exclude_easy=exclude_easy)
    assert shares(d) == expected
    assert d.kind == "P_eval"
    # The counts behind the shares are kept, level 0 included even when excluded.
    assert d.counts == {0: 50, 1: 20, 2: 10, 3: 10, 4: 5, 5: 5}
    assert "L0 " in d.describe() and "(n=50)" in d.describe()


def test_p_eval_from_rows_skips_ungradable() -> None:
    rows = [graded("a", 0), graded("b", 0), graded("c", 3), graded("d", None), graded("e", 5)]
    d = from_grading_summary(rows)
    assert shares(d) == [0.5, 0.0, 0.0, 0.25, 0.0, 0.25]
    assert d.counts == {0: 2, 1: 0, 2: 0, 3: 1, 4: 0, 5: 1}
    assert from_grading_summary(rows) == from_grading_summary({"level_counts": {"0": 2, "3": 1, "5": 1}})


@pytest.mark.parametrize(
    ("graded_input", "exclude_easy", "message"),
    [
        ({"questions": 3}, False, "no level_counts"),
        ({"level_counts": {"6": 1}}, False, r"level_counts\['6'\]"),
        ({"level_counts": {"1": -2}}, False, r"level_counts\['1'\] = -2"),
        ({"level_counts": {"1": 1.5}}, False, "not a count"),
        ({"level_counts": {"0": 0, "1": 0}}, False, "no graded question"),
        ({"level_counts": {"0": 7}}, True, r"every graded question is level 0 \(7 solved\)"),
        ([], False, "no graded question"),
    ],
)
def test_p_eval_errors(graded_input: Any, exclude_easy: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_grading_summary(graded_input, exclude_easy=exclude_easy)


@pytest.mark.parametrize(
    ("weights", "easy", "exclude_easy", "expected"),
    [
        ([5, 4, 3, 2, 1], 0, False, [0, 5 / 15, 4 / 15, 3 / 15, 2 / 15, 1 / 15]),
        ([5, 4, 3, 2, 1], 5, False, [0.25, 0.25, 0.2, 0.15, 0.1, 0.05]),
        ([5, 4, 3, 2, 1], 5, True, [0, 5 / 15, 4 / 15, 3 / 15, 2 / 15, 1 / 15]),
        ([0.5, 0.4, 0.3, 0.2, 0], 0, False, [0, 0.5 / 1.4, 0.4 / 1.4, 0.3 / 1.4, 0.2 / 1.4, 0]),
    ],
)
def test_p_prior(weights: list[float], easy: float, exclude_easy: bool, expected: list[float]) -> None:
    d = from_prior(PriorSpec(weights=weights, easy_weight=easy), exclude_easy=exclude_easy)
    assert shares(d) == [round(x, 12) for x in expected]
    assert d.kind == "P_prior" and d.counts is None
    assert all(a > b for a, b in zip(shares(d)[1:], shares(d)[2:], strict=False) if b > 0)


def test_p_prior_default_is_five_to_one() -> None:
    d = from_prior(PriorSpec())
    assert d.shares[1] == pytest.approx(5 / 15) and d.shares[5] == pytest.approx(1 / 15) and d.shares[0] == 0
    assert "weights 5:4:3:2:1" in d.describe()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": [1, 2, 3, 4, 5]}, "strictly decreasing"),
        ({"weights": [5, 4, 4, 2, 1]}, "strictly decreasing"),
        ({"weights": [5, 4, 3, 2, -1]}, "greater than or equal to 0"),
        ({"weights": [5, 4, 3, 2]}, "at least 5 items"),
        ({"weights": [5, 4, 3, 2, 1], "easyWeight": -1}, "greater than or equal to 0"),
    ],
)
def test_prior_spec_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PriorSpec.model_validate(data)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0, 0, 0, 0, 0], "every weight is zero"),
        ([1, 2, 3, 4, 5], "strictly decreasing"),
        ([5, 4, 3, 2, -1], "weight of level 5 must be a finite number >= 0"),
        ([math.nan, 4, 3, 2, 1], "weight of level 1 must be a finite number"),
    ],
)
def test_from_prior_rechecks_unvalidated_specs(weights: list[float], message: str) -> None:
    # model_construct skips pydantic validation (as hand-built specs might): from_prior still refuses.
    with pytest.raises(ValueError, match=message):
        from_prior(PriorSpec.model_construct(weights=weights, easy_weight=0.0))


@pytest.mark.parametrize(
    ("table", "exclude_easy", "expected"),
    [
        ({"0": 0.1, "1": 0.3, "2": 0.3, "3": 0.3}, False, [0.1, 0.3, 0.3, 0.3, 0, 0]),
        ({0: 1, 5: 3}, False, [0.25, 0, 0, 0, 0, 0.75]),
        ({"0": 2, "2": 1, "4": 1}, True, [0, 0, 0.5, 0, 0.5, 0]),
        ({"3": 7}, False, [0, 0, 0, 1, 0, 0]),
    ],
)
def test_table(table: dict[Any, float], exclude_easy: bool, expected: list[float]) -> None:
    d = from_table(table, exclude_easy=exclude_easy)
    assert shares(d) == expected and d.kind == "table"


@pytest.mark.parametrize(
    ("table", "exclude_easy", "message"),
    [
        ({"6": 1}, False, "keys must be levels 0 to 5, got '6'"),
        ({"hard": 1}, False, "keys must be levels 0 to 5"),
        ({"1": -0.5}, False, "weight of level 1 must be a finite number >= 0, got -0.5"),
        ({"1": math.inf}, False, "weight of level 1 must be a finite number"),
        ({"1": 0, "2": 0}, False, "every weight is zero"),
        ({}, False, "every weight is zero"),
        ({"0": 1}, True, "level 0 excluded: every weight is zero"),
    ],
)
def test_table_errors(table: dict[str, float], exclude_easy: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_table(table, exclude_easy=exclude_easy)


@pytest.mark.parametrize(
    ("spec", "summary", "expected"),
    [
        ({"prior": {"weights": [5, 4, 3, 2, 1]}}, None, [0, 5 / 15, 4 / 15, 3 / 15, 2 / 15, 1 / 15]),
        ({"table": {1: 1, 2: 1}}, None, [0, 0.5, 0.5, 0, 0, 0]),
        ({"table": {0: 2, 1: 1, 2: 1}, "excludeEasy": True}, None, [0, 0.5, 0.5, 0, 0, 0]),
        ({"fromGradingRun": {"name": "eval"}}, SUMMARY, [0.5, 0.2, 0.1, 0.1, 0.05, 0.05]),
        ({"fromGradingRun": {"name": "eval"}, "excludeEasy": True}, SUMMARY, [0, 0.4, 0.2, 0.2, 0.1, 0.1]),
    ],
)
def test_resolve(spec: dict[str, Any], summary: dict[str, Any] | None, expected: list[float]) -> None:
    d = resolve(DistributionSpec.model_validate(spec), eval_summary=summary)
    assert shares(d) == [round(x, 12) for x in expected]
    assert math.fsum(d.shares.values()) == pytest.approx(1)


def test_resolve_from_grading_run_needs_its_summary() -> None:
    with pytest.raises(ValueError, match="fromGradingRun 'eval': its grading summary is needed"):
        resolve(DistributionSpec.model_validate({"fromGradingRun": {"name": "eval"}}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "set exactly one of fromGradingRun, prior, table"),
        ({"prior": {}, "table": {"1": 1}}, "set exactly one"),
        ({"table": {"7": 1}}, "table keys must be levels 0 to 5"),
        ({"table": {"1": 0}}, "at least one positive share"),
    ],
)
def test_distribution_spec_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DistributionSpec.model_validate(spec)


@pytest.mark.parametrize(
    "bad",
    [
        {0: 0.5, 1: 0.5},  # levels missing
        {0: 0.5, 1: 0.6, 2: 0, 3: 0, 4: 0, 5: 0},  # sums to 1.1
        {0: 1.5, 1: -0.5, 2: 0, 3: 0, 4: 0, 5: 0},  # negative share
    ],
)
def test_distribution_invariants(bad: dict[int, float]) -> None:
    with pytest.raises(ValueError, match="share"):
        Distribution(shares=bad, kind="table")


def test_as_json_has_string_levels() -> None:
    d = from_grading_summary(SUMMARY)
    out = d.as_json()
    assert out["shares"]["0"] == 0.5 and out["counts"]["5"] == 5 and out["kind"] == "P_eval"
    assert "counts" not in from_table({"1": 1}).as_json()
