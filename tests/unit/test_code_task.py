"""The code chain's synthetic task (adacot.demo.code_task) and its resources (adacot.demo.code_chain):
both answer styles are right programs, parentheses follow Python's precedence, the sets are disjoint,
and the YAML is what the local runner and the CRDs accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.loader import load_resources
from adacot.api.sft_job import SFTJob
from adacot.demo import code_chain, spec
from adacot.demo.code_task import (
    OPS,
    Func,
    direct_answer,
    expression,
    funcs,
    random_func,
    step_answer,
    training_task,
)
from adacot.demo.pretrain import PretrainPlan, train


def run(answer: str, x: int) -> int:
    program = answer.rsplit("```python\n", 1)[1].split("```")[0]
    scope: dict[str, object] = {}
    exec(program, scope)  # our own generated reference programs, not model output
    return int(scope["f"](x))  # type: ignore[operator]


def test_both_answer_styles_compute_the_function_on_every_input() -> None:
    for item in funcs(300, seed=7):
        for x in range(-9, 10):
            assert run(direct_answer(item), x) == item(x) == run(step_answer(item), x), (item.id, x)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (("inc", "double"), "(x + 1) * 2"),
        (("double", "inc"), "x * 2 + 1"),
        (("neg", "square"), "(-x) ** 2"),
        (("square", "square"), "(x ** 2) ** 2"),
        (("square", "neg"), "-x ** 2"),
        (("dec", "neg"), "-(x - 1)"),
        (("halve", "mod3", "abs"), "abs(x // 2 % 3)"),
        (("inc", "pos"), "max(x + 1, 0)"),
    ],
)
def test_parentheses_only_where_python_needs_them(steps: tuple[str, ...], expected: str) -> None:
    item = Func(steps, (1,))
    assert expression(item) == expected
    assert all(eval(expected, {"x": x}) == item(x) for x in range(-9, 10))


def test_question_rows_carry_function_call_tests_with_expected_outputs() -> None:
    item = Func(("inc", "double"), (0, 3, -2))
    row = item.row()
    assert row["problem"] == "f(x): add one, double"
    assert row["tests"] == {"entry_point": "f", "inputs": [[0], [3], [-2]], "outputs": [2, 8, -2]}


def test_random_functions_never_repeat_an_operation_and_use_distinct_inputs() -> None:
    import random

    rng = random.Random(3)
    for _ in range(200):
        item = random_func(rng, 4)
        assert all(a != b for a, b in zip(item.steps, item.steps[1:], strict=False))
        assert len(set(item.inputs)) == len(item.inputs) == 5
        assert set(item.steps) <= set(OPS)


def test_bad_operation_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="op weights"):
        funcs(3, 0, op_weights=(0, 0))
    with pytest.raises(ValueError, match="student or teacher"):
        training_task("judge")


def test_the_three_sets_are_disjoint_and_sized(tmp_path: Path) -> None:
    paths = code_chain.write_questions(tmp_path, code_chain.QUICK)
    ids = {name: [json.loads(line)["id"] for line in p.read_text().splitlines()] for name, p in paths.items()}
    assert [len(ids[n]) for n in ("pool", "eval", "test")] == [64, 32, 32]
    assert len(set(ids["pool"]) | set(ids["eval"]) | set(ids["test"])) == 128


def test_the_yaml_is_six_valid_resources_with_a_stage_started_teacher(tmp_path: Path) -> None:
    docs = code_chain.documents(tmp_path, code_chain.QUICK, tmp_path / "s", tmp_path / "t", port=18000)
    (tmp_path / "code.yaml").write_text(spec.dump(docs))
    loaded = load_resources(tmp_path / "code.yaml")
    assert [f"{r.kind}/{r.metadata.name}" for r in loaded] == [
        "GradingRun/pool", "GradingRun/eval", "DifficultyBank/bank", "DistillationJob/distil",
        "SFTJob/distil-sft",
    ]  # fmt: skip
    pool, _, _, distil, sft = loaded
    assert isinstance(pool, GradingRun) and isinstance(distil, DistillationJob) and isinstance(sft, SFTJob)
    assert pool.spec.questions.task == "code" and pool.spec.grader.prm is None  # test-pass levels
    assert distil.spec.teacher.server is not None and distil.spec.teacher.server.port == 18000
    assert sft.spec.evaluation is not None and sft.spec.evaluation.datasets[0].task == "code"


def test_a_width_vllm_would_read_wrongly_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        train(
            tmp_path / "m", PretrainPlan(steps=1, hidden=96), training_task("student"), label="x", log=print
        )
