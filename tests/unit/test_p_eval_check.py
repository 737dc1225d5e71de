"""A DistillationJob sampling to P_eval (distribution.fromGradingRun) checks, before anything is drawn,
that the run graded the bank's model with the bank's grader and level rule; a mismatch is ValidationFailed
naming both resources, every differing field and both values. Real artifacts: two GradingRuns graded by
the pipeline, a bank built by the bank stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from distill_helpers import job
from graded_runs import PRM_GRADER, graded_run

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.stage_pod import VALIDATION_FAILED_EXIT_CODE, ValidationFailed
from adacot.backends.base import Generator
from adacot.cli.main import main
from adacot.pipelines.difficulty_bank import run_difficulty_bank
from adacot.pipelines.distillation_job import run_distillation_job

OUTCOMES = {"a": "solved", "b": 0.05, "c": 0.3, "d": 0.45, "e": 0.7, "f": 0.9, "g": "solved"}
P_EVAL = job(distribution={"fromGradingRun": {"name": "eval"}}, size=4)


class Drawn(Exception):
    """Raised by the teacher factory: the job got past its checks and drew its sample."""


def teacher() -> Generator:
    raise Drawn


def bank_of(root: Path, pool: Path, **spec: Any) -> Path:
    resource = DifficultyBank.model_validate(
        {"kind": "DifficultyBank", "metadata": {"name": "bank"}, "spec": spec}
    )
    runs = {"pool": pool, **({"eval": root / "eval"} if "levels" in spec else {})}
    run_difficulty_bank(resource, root / "bank", runs=runs)
    return root / "bank"


def distil(root: Path, bank: Path, eval_dir: Path) -> None:
    run_distillation_job(P_EVAL, root / "out", bank_dir=bank, eval_dir=eval_dir, generator=teacher)


def test_a_matching_pair_draws(tmp_path: Path) -> None:
    pool = graded_run(tmp_path, "pool", OUTCOMES, bank="bank")
    eval_dir = graded_run(tmp_path, "eval", OUTCOMES)
    with pytest.raises(Drawn):
        distil(tmp_path, bank_of(tmp_path, pool), eval_dir)
    assert (tmp_path / "out" / "sample.jsonl").is_file()


def test_quantile_p_eval_matches_only_a_bank_that_froze_its_cut_points(tmp_path: Path) -> None:
    pool = graded_run(tmp_path, "pool", OUTCOMES, bank="bank")
    eval_dir = graded_run(tmp_path, "eval", OUTCOMES, grader={**PRM_GRADER, "levels": {"mode": "quantiles"}})
    with pytest.raises(ValidationFailed) as error:
        distil(tmp_path, bank_of(tmp_path / "bins", pool), eval_dir)
    assert str(error.value).startswith("distribution.fromGradingRun eval and bankRef bank (source ")
    assert str(error.value).endswith(
        "grader.levels cut points: GradingRun eval has [0.3, 0.45, 0.7, 0.9], "
        "DifficultyBank bank has [0.2, 0.4, 0.6, 0.8]"
    )
    frozen = bank_of(tmp_path, pool, levels={"cutPointsFrom": {"name": "eval"}})
    with pytest.raises(Drawn):
        distil(tmp_path, frozen, eval_dir)


PRM_B = {"prm": {"model": {"path": "/models/other-prm"}}}


@pytest.mark.parametrize(
    ("eval_run", "pool_run", "expected"),
    [
        ({"model": "/models/bigger"}, {},
         "model: GradingRun eval has '/models/bigger', DifficultyBank bank has '/models/student'"),
        ({"grader": {"method": "passRate"}, "n": 2}, {},
         "grader.method: GradingRun eval has 'passRate', DifficultyBank bank has 'prm'"),
        ({"grader": {**PRM_GRADER, "solvedRule": "majority"}}, {},
         "grader.solvedRule: GradingRun eval has 'majority', DifficultyBank bank has 'any'"),
        ({"grader": {**PRM_GRADER, "solvedRule": "threshold", "solvedThreshold": 0.75}},
         {"grader": {**PRM_GRADER, "solvedRule": "threshold", "solvedThreshold": 0.5}},
         "grader.solvedThreshold: GradingRun eval has 0.75, DifficultyBank bank has 0.5"),
        ({"grader": PRM_B}, {},
         "grader.prm.model: GradingRun eval has '/models/other-prm', DifficultyBank bank has '/models/prm'"),
        ({"grader": {"prm": {**PRM_GRADER["prm"], "aggregation": "mean"}}}, {},
         "grader.prm.aggregation: GradingRun eval has 'mean', DifficultyBank bank has 'min'"),
        ({"grader": {"prm": {**PRM_GRADER["prm"], "sampleAggregation": "max"}}}, {},
         "grader.prm.sampleAggregation: GradingRun eval has 'max', DifficultyBank bank has 'mean'"),
        ({"grader": {**PRM_GRADER, "levels": {"cutPoints": [0.1, 0.2, 0.3, 0.4]}}}, {},
         "grader.levels cut points: GradingRun eval has [0.1, 0.2, 0.3, 0.4], DifficultyBank bank has "
         "[0.2, 0.4, 0.6, 0.8]"),
    ],
)  # fmt: skip
def test_each_mismatch_is_named_with_both_values(
    tmp_path: Path, eval_run: dict[str, Any], pool_run: dict[str, Any], expected: str
) -> None:
    pool = graded_run(tmp_path, "pool", OUTCOMES, bank="bank", **pool_run)
    eval_dir = graded_run(tmp_path, "eval", OUTCOMES, **eval_run)
    with pytest.raises(ValidationFailed, match="were graded differently") as error:
        distil(tmp_path, bank_of(tmp_path, pool), eval_dir)
    assert expected in str(error.value)
    assert not (tmp_path / "out" / "sample.jsonl").exists()  # nothing drawn


def test_the_stage_command_exits_with_the_validation_code(tmp_path: Path) -> None:
    """What the operator's pod runs: exit code 2 fails the Job at once, reported as ValidationFailed."""
    pool = graded_run(tmp_path, "pool", OUTCOMES, bank="bank")
    eval_dir = graded_run(tmp_path, "eval", OUTCOMES, model="/models/bigger")
    spec = tmp_path / "dj.yaml"
    spec.write_text(P_EVAL.model_dump_json(by_alias=True))
    args = ["stage", "distillationjob", "--spec", str(spec), "--bank", str(bank_of(tmp_path, pool)),
            "--eval-grading", str(eval_dir), "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == VALIDATION_FAILED_EXIT_CODE, result.output
    assert (
        "model: GradingRun eval has '/models/bigger', DifficultyBank bank has '/models/student'"
        in result.output
    )
    assert "Traceback" not in result.output and "Usage:" not in result.output
