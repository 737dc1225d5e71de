"""Evaluation with one sample per question (greedy accuracy): the pass-rate grader's n >= 2 rule guards
levels, which evaluation does not use, so its GradingRun must carry n = 1 through (it used to be
rejected when the resource was built, which validated the spec again)."""

from __future__ import annotations

from adacot.api.common import ModelSpec
from adacot.api.sft_job import EvaluationSpec
from adacot.pipelines.evaluation import grading_run


def evaluation(n: int) -> EvaluationSpec:
    return EvaluationSpec.model_validate(
        {
            "datasets": [{"name": "test", "path": "t.jsonl"}],
            "sampling": {"samplesPerQuestion": n, "temperature": 0.0},
        }
    )


def test_one_sample_passes_through_to_the_grading_run() -> None:
    spec = evaluation(1)
    run = grading_run(spec, spec.datasets[0], ModelSpec(path="/m"), "model")
    assert run.spec.sampling.samples_per_question == 1 and run.spec.grader.method == "passRate"
    assert run.metadata.name == "eval-model-test"


def test_several_samples_are_kept_as_given() -> None:
    spec = evaluation(4)
    assert (
        grading_run(spec, spec.datasets[0], ModelSpec(path="/m"), "base").spec.sampling.samples_per_question
        == 4
    )
