"""The method experiment's pure parts: automatic step labels, AUC, per-seed statistics, arm specs."""

from __future__ import annotations

import math

import pytest

from adacot.demo import arms, stats
from adacot.demo.prm import auc
from adacot.demo.synthetic import Sum, partial_answer, partial_results, step_labels


def test_partial_results_are_the_last_digits_of_the_sum_then_the_answer() -> None:
    assert partial_results(Sum(47, 85)) == ["2", "32", "\\boxed{132}"]
    assert partial_results(Sum(105, 3)) == ["8", "08", "108", "\\boxed{108}"]
    assert partial_answer(Sum(47, 85)) == "2\n32\n\\boxed{132}"


def test_step_labels_mark_each_wrong_partial_result() -> None:
    item = Sum(47, 85)
    assert step_labels(item, ["2", "32", "\\boxed{132}"]) == [True, True, True]
    assert step_labels(item, ["2", "42", "\\boxed{142}"]) == [True, False, False]
    assert step_labels(item, ["3", "32", "\\boxed{132}"]) == [False, True, True]
    assert step_labels(item, ["2", "32", "132", "\\boxed{132}"]) == [True, True, False, True]  # extra line


def test_auc_counts_pairs_and_half_ties() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.9, 0.3], [0.5]) == 0.5
    with pytest.raises(ValueError, match="right and wrong steps"):
        auc([0.9], [])


def test_paired_difference_has_a_t_interval_over_seeds() -> None:
    x = {"0": 0.50, "1": 0.40, "2": 0.45}
    y = {"0": 0.30, "1": 0.35, "2": 0.25}
    result = stats.paired(x, y)
    diffs = [0.20, 0.05, 0.20]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = 4.303 * sd / math.sqrt(3)
    assert result["mean"] == pytest.approx(mean)
    assert result["ci95"] == pytest.approx([mean - half, mean + half])
    assert "no difference shown" in stats.verdict("A-U", result)  # 3 seeds: wide interval contains 0
    assert "first arm is better" in stats.verdict("A-U", stats.paired(x, {k: v - 0.1 for k, v in x.items()}))


def test_paired_uses_only_shared_seeds_and_one_seed_has_no_interval() -> None:
    result = stats.paired({"0": 0.5, "1": 0.6}, {"1": 0.4})
    assert result["n"] == 1 and result["ci95"] is None and result["mean"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="share no seed"):
        stats.paired({"0": 0.5}, {"1": 0.4})


def test_spread_summarises_per_seed_values() -> None:
    summary = stats.spread({"0": 0.2, "1": 0.4})
    assert summary["mean"] == pytest.approx(0.3) and summary["sd"] == pytest.approx(math.sqrt(0.02))
    assert stats.spread({"0": 0.2})["sd"] == 0.0


def test_each_arm_samples_its_own_bank_and_distribution() -> None:
    assert arms.distribution("A", None) == ("bank", {"fromGradingRun": {"name": "eval"}})
    assert arms.distribution("B", None) == ("bank-pr", {"fromGradingRun": {"name": "eval-pr"}})
    assert arms.distribution("U", None)[1]["table"] == arms.spec.UNIFORM
    assert arms.distribution("C", {"1": 1.0}) == ("bank", {"table": {"1": 1.0}})
    with pytest.raises(ValueError, match="stronger student"):
        arms.distribution("C", None)
    with pytest.raises(ValueError, match="unknown arm"):
        arms.distribution("Z", None)
    assert arms.table_from_counts({0: 1, 1: 3}) == {"0": 0.25, "1": 0.75}
