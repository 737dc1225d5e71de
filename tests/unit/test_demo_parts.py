"""The demo's pure parts: the synthetic task's answers pass adacot's own checks, distill.yaml plans, the
ablation verdict follows the numbers (the end-to-end run is tests/integration/test_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adacot import runner
from adacot.api.generation import Endpoint
from adacot.demo import spec
from adacot.demo.pipeline import DemoWorkdirError, claim_workdir
from adacot.demo.report import verdict
from adacot.demo.synthetic import Sum, direct_answer, step_answer, sums
from adacot.stages.r1 import assemble
from adacot.verify.math import verify_math

CASES = [Sum(7, 5), Sum(0, 0), Sum(99, 1), Sum(385, 47), Sum(5, 995)]


@pytest.mark.parametrize("item", CASES, ids=lambda s: s.id)
def test_both_answer_styles_are_right_by_the_verifier_and_the_teacher_style_is_r1(item: Sum) -> None:
    assert verify_math(direct_answer(item), item.answer).correct is True
    r1 = assemble(step_answer(item))
    assert r1.text == step_answer(item) and r1.reasoning  # kept as is by the distillation stage
    assert verify_math(r1.answer, item.answer).correct is True


def test_step_answer_writes_each_column_with_its_carry() -> None:
    assert step_answer(Sum(385, 47)) == "<think>\n5+7+0=12\n8+4+1=13\n3+0+1=4\n</think>\n\n\\boxed{432}"


def test_sums_are_distinct_seeded_and_cover_each_size() -> None:
    items = sums(300, seed=3)
    assert len({s.id for s in items}) == 300 and items == sums(300, seed=3)
    assert {s.digits for s in items} == {1, 2, 3}


def test_question_files_are_disjoint(tmp_path: Path) -> None:
    paths = spec.write_questions(tmp_path, spec.QUICK)
    ids = {name: {line.split('"id": "')[1].split('"')[0] for line in p.read_text().splitlines()}
           for name, p in paths.items()}  # fmt: skip
    assert [len(ids[n]) for n in ("pool", "eval", "test")] == [
        spec.QUICK.pool,
        spec.QUICK.eval,
        spec.QUICK.test,
    ]
    assert not ids["pool"] & ids["eval"] and not ids["pool"] & ids["test"] and not ids["eval"] & ids["test"]
    one_digit = {
        n: sum(i.count("+") == 1 and len(i) == 3 for i in found) / len(found) for n, found in ids.items()
    }
    assert one_digit["pool"] == one_digit["eval"] == one_digit["test"] > 0  # stratified: P_eval fits the pool


def test_distill_yaml_plans_in_dependency_order(tmp_path: Path) -> None:
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text("{}")
    project = tmp_path / "project"
    spec.write_questions(project, spec.QUICK)
    endpoint = Endpoint(url="http://127.0.0.1:1/v1", model="teacher")
    prm = tmp_path / "prm"
    prm.mkdir()
    (prm / "config.json").write_text("{}")
    text = spec.dump(spec.documents(project, spec.QUICK, student, prm, endpoint))
    assert "samplesPerQuestion: " in text and "\n    n: " not in text  # sampling.n was renamed (issue 16)
    (project / "distill.yaml").write_text(text)
    stages = runner.plan(project / "distill.yaml", tmp_path / "runs")
    assert [s.label for s in stages] == [
        "GradingRun/pool", "GradingRun/eval", "DifficultyBank/bank", "DistillationJob/adaptive",
        "DistillationJob/ablation", "SFTJob/adaptive-sft", "SFTJob/ablation-sft",
    ]  # fmt: skip
    jobs = [s.resource for s in stages if s.label.startswith("DistillationJob")]
    assert jobs[0].spec.size == jobs[1].spec.size and jobs[0].spec.seed == jobs[1].spec.seed
    assert jobs[0].spec.distribution.from_grading_run is not None and jobs[1].spec.distribution.table
    gradings = [s.resource for s in stages if s.label.startswith("GradingRun")]
    assert all(g.spec.grader.method == "prm" for g in gradings)  # the demo exercises the PRM-Grader


@pytest.mark.parametrize(
    ("adaptive", "ablation", "expected"),
    [
        (0.30, 0.25, "the adaptive set did better by 5.0 points"),
        (0.20, 0.30, "the uniform set did better by 10.0 points (the opposite"),
        (0.25, 0.25, "no difference between them"),
        (None, 0.25, "not measured"),
    ],
)
def test_verdict_follows_the_measured_accuracies(
    adaptive: float | None, ablation: float, expected: str
) -> None:
    facts = {"base-accuracy": 0.2, "adaptive-accuracy": adaptive, "ablation-accuracy": ablation}
    assert expected in verdict({**facts, "test-questions": 60})


def test_a_workdir_holds_one_demo_size(tmp_path: Path) -> None:
    claim_workdir(tmp_path / "w", "quick")
    claim_workdir(tmp_path / "w", "quick")  # a rerun of the same size reuses it
    with pytest.raises(DemoWorkdirError, match="holds a quick demo; use --fresh"):
        claim_workdir(tmp_path / "w", "full")
