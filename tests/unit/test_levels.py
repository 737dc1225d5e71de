"""Tables for the grading rules: aggregation, solved rules, bins, quantiles, pass-rate levels, P_eval."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adacot.api.grading_run import LevelMapping
from adacot.artifacts.rows import Verdict
from adacot.stages.levels import (
    aggregate_samples,
    aggregate_steps,
    distribution,
    is_solved,
    level_from_cuts,
    level_histogram,
    level_of,
    levels_for,
    pass_rate,
    pass_rate_levels,
    pass_rate_score,
    quantile_cuts,
    quantile_levels,
)

BINS = LevelMapping()  # cut points 0.2, 0.4, 0.6, 0.8
QUANTILES = LevelMapping(mode="quantiles")


@pytest.mark.parametrize(
    ("scores", "how", "expected"),
    [
        ([0.9, 0.2, 0.7], "min", 0.2),
        ([0.9, 0.2, 0.7], "mean", 0.6),
        ([0.9, 0.2, 0.7], "last", 0.7),
        ([0.9, 0.2, 0.5], "product", 0.09),
        ([0.4], "min", 0.4),
        ([0.4], "product", 0.4),
        ([1, 0], "mean", 0.5),  # ints accepted
        ([], "min", None),  # nothing scored: data, not an error
        ([], "product", None),
    ],
)
def test_aggregate_steps(scores: list[float], how: str, expected: float | None) -> None:
    got = aggregate_steps(scores, how)  # type: ignore[arg-type]
    assert got == expected if expected is None else got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("scores", "how", "match"),
    [
        ([0.5, 1.2], "min", r"\[0, 1\]"),
        ([-0.1], "mean", r"\[0, 1\]"),
        ([math.nan], "min", r"\[0, 1\]"),
        ([True], "min", r"\[0, 1\]"),
        ([0.5], "median", "min, mean, last or product"),
    ],
)
def test_aggregate_steps_errors(scores: list[float], how: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        aggregate_steps(scores, how)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scores", "how", "expected"),
    [
        ([0.2, 0.6, 0.4], "mean", 0.4),
        ([0.2, 0.6, 0.4], "min", 0.2),
        ([0.2, 0.6, 0.4], "max", 0.6),
        ([None, 0.6, None, 0.2], "mean", 0.4),  # unscored samples skipped
        ([None, None], "mean", None),
        ([], "max", None),
    ],
)
def test_aggregate_samples(scores: list[float | None], how: str, expected: float | None) -> None:
    got = aggregate_samples(scores, how)  # type: ignore[arg-type]
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_aggregate_samples_rejects_unknown_rule_even_when_empty() -> None:
    with pytest.raises(ValueError, match="mean, min or max"):
        aggregate_samples([], "last")  # type: ignore[arg-type]


T, F, U = True, False, None  # U: the verifier could not decide


@pytest.mark.parametrize(
    ("flags", "rule", "threshold", "solved"),
    [
        ([F, F, T], "any", 0.5, True),
        ([F, F, F], "any", 0.5, False),
        ([U, U], "any", 0.5, False),  # undecided never counts as correct
        ([T, T, F], "majority", 0.5, True),
        ([T, F, T, F], "majority", 0.5, False),  # half is not a majority
        ([T, U, U], "majority", 0.5, False),  # undecided stays in the denominator
        ([T], "majority", 0.5, True),
        ([T, F, T, F], "threshold", 0.5, True),  # >= threshold
        ([T, F, F, F], "threshold", 0.5, False),
        ([T, T, T, F], "threshold", 1.0, False),
        ([T, T, T, T], "threshold", 1.0, True),
        ([T, U, F, F], "threshold", 0.25, True),
    ],
)
def test_is_solved(flags: list[bool | None], rule: str, threshold: float, solved: bool) -> None:
    assert is_solved(flags, rule, threshold) is solved  # type: ignore[arg-type]


def test_is_solved_reads_verdicts() -> None:
    verdicts = [
        Verdict(correct=None, reason="timeout"),
        Verdict(correct=True, reason="equivalent"),
        Verdict(correct=False, reason="not_equivalent"),
    ]
    assert is_solved(verdicts, "any")
    assert not is_solved(verdicts, "majority")
    assert pass_rate(verdicts) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("flags", "rule", "threshold", "match"),
    [
        ([], "any", 0.5, "at least one sample"),
        ([T], "most", 0.5, "any, majority or threshold"),
        ([T], "threshold", 0.0, r"\(0, 1\]"),
    ],
)
def test_is_solved_errors(flags: list[bool | None], rule: str, threshold: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        is_solved(flags, rule, threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (1.0, 1),
        (0.8, 1),  # a cut point belongs to the easier level
        (0.79, 2),
        (0.6, 2),
        (0.5, 3),
        (0.4, 3),
        (0.39, 4),
        (0.2, 4),
        (0.19, 5),
        (0.0, 5),
    ],
)
def test_bins_higher_score_is_easier(score: float, level: int) -> None:
    assert level_of(score, BINS) == level


def test_custom_bins() -> None:
    mapping = LevelMapping(cut_points=[0.05, 0.1, 0.5, 0.9])
    assert [level_of(s, mapping) for s in (0.95, 0.7, 0.3, 0.07, 0.01)] == [1, 2, 3, 4, 5]
    assert levels_for([0.95, 0.01], mapping) == [1, 5]


def test_level_of_errors() -> None:
    with pytest.raises(ValueError, match="levels_for"):
        level_of(0.5, QUANTILES)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        level_of(1.5, BINS)
    with pytest.raises(ValueError, match="4 cut points"):
        level_from_cuts(0.5, [0.5])


@pytest.mark.parametrize(
    ("scores", "levels"),
    [
        ([0.9], [3]),  # one unsolved question: the middle level
        ([0.1, 0.9], [4, 2]),
        ([0.5, 0.1, 0.9], [3, 5, 1]),
        ([0.4, 0.3, 0.2, 0.1], [1, 2, 4, 5]),
        ([0.5, 0.4, 0.3, 0.2, 0.1], [1, 2, 3, 4, 5]),
        ([i / 10 for i in range(10)], [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]),  # five equal groups
        ([0.7, 0.7, 0.7], [3, 3, 3]),  # all tied
        ([0.9, 0.5, 0.5, 0.1], [1, 3, 3, 5]),  # ties share a level
        ([0.5, 0.9, 0.5, 0.5, 0.5, 0.1], [3, 1, 3, 3, 3, 5]),
        ([], []),
    ],
)
def test_quantile_levels(scores: list[float], levels: list[int]) -> None:
    assert quantile_levels(scores) == levels
    assert levels_for(scores, QUANTILES) == levels


def test_quantile_levels_do_not_depend_on_order() -> None:
    scores = [0.3, 0.3, 0.8, 0.1, 0.55, 0.3, 0.9, 0.0]
    by_score = dict(zip(scores, quantile_levels(scores), strict=True))
    reordered = list(reversed(scores))
    assert quantile_levels(reordered) == [by_score[s] for s in reordered]


@pytest.mark.parametrize(
    ("scores", "cuts"),
    [
        ([i / 10 for i in range(10)], [0.2, 0.4, 0.6, 0.8]),
        ([0.9], [0.9, 0.9, None, None]),  # level 3: nobody reached levels 2 or 1
        ([0.1, 0.9], [0.1, 0.9, 0.9, None]),  # levels 4 and 2
        ([], [None, None, None, None]),
    ],
)
def test_quantile_cuts(scores: list[float], cuts: list[float | None]) -> None:
    assert quantile_cuts(scores) == cuts


@given(st.lists(st.floats(min_value=0, max_value=1), max_size=60))
def test_quantile_cuts_reproduce_levels(scores: list[float]) -> None:
    levels = quantile_levels(scores)
    assert [level_from_cuts(s, quantile_cuts(scores)) for s in scores] == levels
    pairs = sorted(zip(scores, levels, strict=True))
    assert all(la >= lb for (_, la), (_, lb) in itertools.pairwise(pairs))  # higher is easier
    if len(set(scores)) == len(scores) >= 5:  # distinct scores fill every level, at most ceil(n/5) each
        counts = [levels.count(lv) for lv in range(1, 6)]
        assert min(counts) >= 1 and max(counts) <= -(-len(scores) // 5)


@pytest.mark.parametrize(
    ("rate", "rule", "threshold", "score"),
    [
        (0.0, "any", 0.5, 0.0),
        (0.25, "threshold", 0.5, 0.5),
        (0.0, "threshold", 0.5, 0.0),
        (0.75, "threshold", 1.0, 0.75),
        (0.5, "majority", 0.5, 1.0),  # exactly half is unsolved under majority
        (0.25, "majority", 0.5, 0.5),
    ],
)
def test_pass_rate_score(rate: float, rule: str, threshold: float, score: float) -> None:
    assert pass_rate_score(rate, rule, threshold) == pytest.approx(score)  # type: ignore[arg-type]


def test_pass_rate_score_of_a_solved_question_is_an_error() -> None:
    with pytest.raises(ValueError, match="level 0"):
        pass_rate_score(0.5, "threshold", 0.5)


def test_pass_rate_levels() -> None:
    rates = [1.0, 0.0, 0.25, 0.5, 0.75, 0.125]
    # threshold 1.0: only all-correct is solved; the rest by how close they came
    assert pass_rate_levels(rates, BINS, "threshold", 1.0) == [0, 5, 4, 3, 2, 5]
    assert pass_rate_levels(rates, BINS, "any") == [0, 5, 0, 0, 0, 0]
    assert pass_rate_levels(rates, BINS, "majority") == [0, 5, 3, 1, 0, 4]
    assert pass_rate_levels(rates, QUANTILES, "threshold", 1.0) == [0, 5, 3, 2, 1, 4]


def test_histogram_and_distribution() -> None:
    levels = [0, 0, 0, 1, 5, 5, None, 3, 0]
    assert level_histogram(levels) == {0: 4, 1: 1, 2: 0, 3: 1, 4: 0, 5: 2}
    dist = distribution(levels)
    assert list(dist) == [0, 1, 2, 3, 4, 5]
    assert dist == pytest.approx({0: 0.5, 1: 0.125, 2: 0.0, 3: 0.125, 4: 0.0, 5: 0.25})
    assert math.fsum(dist.values()) == pytest.approx(1.0)


def test_histogram_and_distribution_errors() -> None:
    assert level_histogram([]) == dict.fromkeys(range(6), 0)
    with pytest.raises(ValueError, match="undefined"):
        distribution([None, None])
    for bad in (6, -1, True, 2.5):
        with pytest.raises(ValueError, match=r"0\.\.5"):
            level_histogram([bad])  # type: ignore[list-item]
