"""Cut points fitted on the evaluation grading and frozen into the bank (DifficultyBank levels.cutPointsFrom):
the GradingRun records the cut points its levels were made with, the bank re-levels every unsolved entry
with the named run's cut points and records them, for the PRM and the pass-rate grader alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from graded_runs import PRM_GRADER, graded_run

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.stage_pod import VALIDATION_FAILED_EXIT_CODE, ValidationFailed
from adacot.artifacts import BankEntry, GradedQuestion, read_manifest, read_records
from adacot.artifacts.summary import read_summary
from adacot.cli.main import main
from adacot.pipelines.difficulty_bank import run_difficulty_bank
from adacot.stages.levels import level_from_cuts, quantile_cuts

QUANTILES = {**PRM_GRADER, "levels": {"mode": "quantiles"}}
#: Unsolved scores bunched as a real PRM's min-aggregated scores are: all under 0.2 but one.
EVAL = {"e0": "solved", "e1": 0.02, "e2": 0.04, "e3": 0.05, "e4": 0.07, "e5": 0.08, "e6": 0.1,
        "e7": 0.12, "e8": 0.15, "e9": 0.18, "e10": 0.3, "e11": "solved"}  # fmt: skip
POOL = {"p0": "solved", "p1": 0.01, "p2": 0.03, "p3": 0.06, "p4": 0.09, "p5": 0.11, "p6": 0.14,
        "p7": 0.16, "p8": 0.5, "p9": 0.95}  # fmt: skip


def bank(name: str = "bank", **spec: Any) -> DifficultyBank:
    return DifficultyBank.model_validate({"kind": "DifficultyBank", "metadata": {"name": name}, "spec": spec})


def unsolved_scores(run: Path) -> list[float]:
    return [
        r.score for r in read_records(run, GradedQuestion) if r.level not in (0, None) and r.score is not None
    ]


def test_a_grading_run_records_the_cut_points_its_levels_used(tmp_path: Path) -> None:
    fitted = graded_run(tmp_path, "eval", EVAL, grader=QUANTILES)
    fixed = graded_run(tmp_path, "pool", POOL)
    cuts = read_summary(fitted)["cut_points"]
    assert cuts == quantile_cuts(unsolved_scores(fitted)) and cuts == [0.05, 0.08, 0.12, 0.18]
    assert read_manifest(fitted).metrics["cut_points"] == cuts
    for row in read_records(fitted, GradedQuestion):  # the recorded cuts give the run's own levels back
        if row.level not in (0, None):
            assert level_from_cuts(row.score, cuts) == row.level
    assert read_summary(fixed)["cut_points"] == [0.2, 0.4, 0.6, 0.8]


def test_the_bank_relevels_with_the_eval_runs_cut_points(tmp_path: Path) -> None:
    eval_dir = graded_run(tmp_path, "eval", EVAL, grader=QUANTILES)
    pool_dir = graded_run(tmp_path, "pool", POOL, bank="bank")
    cuts = read_summary(eval_dir)["cut_points"]
    resource = bank(levels={"cutPointsFrom": {"name": "eval"}})
    summary = run_difficulty_bank(resource, tmp_path / "bank", runs={"eval": eval_dir, "pool": pool_dir})

    entries = {e.question.id: e for e in read_records(tmp_path / "bank", BankEntry)}
    assert sorted(entries) == sorted(POOL)  # the eval run gives cut points, never questions
    assert entries["p0"].level == 0
    for qid, entry in entries.items():
        if qid != "p0":
            assert entry.level == level_from_cuts(entry.score, cuts)
    # Fixed bins put seven of the nine unsolved pool questions in level 5; the eval's cuts spread them.
    pool_levels = {row.key: row.level for row in read_records(pool_dir, GradedQuestion)}
    assert sum(1 for lv in pool_levels.values() if lv == 5) == 7
    assert summary["level_counts"] == {"0": 1, "1": 2, "2": 2, "3": 2, "4": 1, "5": 2}
    assert summary["cut_points"] == cuts and summary["cut_points_from"] == "eval"
    assert read_manifest(tmp_path / "bank").metrics["cut_points"] == cuts
    assert json.loads((tmp_path / "bank" / "summary.json").read_text())["cut_points_from"] == "eval"
    assert "cut points" in (tmp_path / "bank" / "SUMMARY.md").read_text()


def test_without_levels_the_bank_keeps_the_sources_levels(tmp_path: Path) -> None:
    pool_dir = graded_run(tmp_path, "pool", POOL, bank="bank")
    summary = run_difficulty_bank(bank(), tmp_path / "bank", runs={"pool": pool_dir})
    assert summary["level_counts"] == {"0": 1, "1": 1, "2": 0, "3": 1, "4": 0, "5": 7}
    assert summary["cut_points_from"] is None and summary["cut_points"] is None


def test_pass_rate_levels_are_relevelled_too(tmp_path: Path) -> None:
    grader = {"method": "passRate", "solvedRule": "threshold", "solvedThreshold": 0.75}
    rates = {f"q{i}": [j < i for j in range(4)] for i in range(4)}  # pass rates 0, 1/4, 2/4, 3/4
    eval_dir = graded_run(tmp_path, "eval", rates, grader={**grader, "levels": {"mode": "quantiles"}}, n=4)
    pool_dir = graded_run(tmp_path, "pool", {**rates, "q4": [True, False, False, False]}, grader=grader, n=4)
    cuts = read_summary(eval_dir)["cut_points"]
    summary = run_difficulty_bank(
        bank(levels={"cutPointsFrom": {"name": "eval"}}),
        tmp_path / "bank",
        runs={"eval": eval_dir, "pool": pool_dir},
    )
    levels = {e.question.id: e.level for e in read_records(tmp_path / "bank", BankEntry)}
    assert levels["q3"] == 0  # 3 of 4 meets the 0.75 threshold
    eval_levels = {r.key: r.level for r in read_records(eval_dir, GradedQuestion)}
    assert {q: levels[q] for q in ("q0", "q1", "q2")} == {q: eval_levels[q] for q in ("q0", "q1", "q2")}
    assert levels["q4"] == levels["q1"] and summary["cut_points"] == cuts


def test_a_cut_point_run_that_also_feeds_the_bank_is_a_source(tmp_path: Path) -> None:
    pool_dir = graded_run(tmp_path, "pool", POOL, grader=QUANTILES, bank="bank")
    summary = run_difficulty_bank(
        bank(levels={"cutPointsFrom": {"name": "pool"}}), tmp_path / "bank", runs={"pool": pool_dir}
    )
    assert summary["questions"] == len(POOL)
    assert summary["level_counts"] == read_summary(pool_dir)["level_counts"]


@pytest.mark.parametrize(
    ("eval_spec", "message"),
    [
        (
            {"model": "/models/teacher"},
            r"model: GradingRun eval has '/models/teacher', source .*pool has '/models/student'",
        ),
        (
            {"grader": {"method": "passRate", "levels": {"mode": "quantiles"}}, "n": 2},
            r"grader.method: GradingRun eval has 'passRate'",
        ),
    ],
)
def test_cut_points_from_a_differently_graded_run_are_refused(
    tmp_path: Path, eval_spec: dict[str, Any], message: str
) -> None:
    eval_dir = graded_run(tmp_path, "eval", {"e0": 0.1, "e1": [False, True]} if "n" in eval_spec else EVAL,
                          **{"grader": QUANTILES, **eval_spec})  # fmt: skip
    pool_dir = graded_run(tmp_path, "pool", POOL, bank="bank")
    with pytest.raises(ValidationFailed, match=message):
        run_difficulty_bank(
            bank(levels={"cutPointsFrom": {"name": "eval"}}),
            tmp_path / "bank",
            runs={"eval": eval_dir, "pool": pool_dir},
        )


def test_the_cut_point_runs_directory_is_required(tmp_path: Path) -> None:
    pool_dir = graded_run(tmp_path, "pool", POOL, bank="bank")
    with pytest.raises(ValueError, match=r"levels.cutPointsFrom 'eval': no output directory"):
        run_difficulty_bank(
            bank(levels={"cutPointsFrom": {"name": "eval"}}), tmp_path / "bank", runs={"pool": pool_dir}
        )


def test_the_bank_command_takes_the_cut_point_run_by_name(tmp_path: Path) -> None:
    eval_dir = graded_run(tmp_path, "eval", EVAL, grader=QUANTILES)
    pool_dir = graded_run(tmp_path, "pool", POOL)
    args = ["bank", "--run", f"eval={eval_dir}", "--run", f"pool={pool_dir}", "--cut-points-from", "eval"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "bank")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["cut_points"] == read_summary(eval_dir)["cut_points"]
    other = graded_run(tmp_path, "other", POOL, model="/models/teacher")
    refused = CliRunner().invoke(main, [*args, "--run", f"other={other}", "--out", str(tmp_path / "mixed")])
    assert refused.exit_code == VALIDATION_FAILED_EXIT_CODE and "/models/teacher" in refused.output
