"""A stage that rejects its inputs (ValidationFailed, exit code 2) fails its Job through the pod failure
policy at once; the operator reports reason ValidationFailed with the stage's own words, as it does for a
spec the schema rejects."""

from __future__ import annotations

from datetime import UTC, datetime

from adacot_operator.builders.job import INPUT_ERROR_EXIT_CODES
from adacot_operator.failures import job_failure
from adacot_operator.status import Children, compute_status
from k8s_objects import job, pod, sample, with_conditions

from adacot.api.stage_pod import VALIDATION_FAILED_EXIT_CODE

WORDS = (
    "Error: distribution.fromGradingRun qwen7b-eval and bankRef qwen7b-bank (source /mnt/adacot/inputs/"
    "gradingrun-qwen7b-pool) were graded differently, so P_eval's levels are not the bank's levels: model: "
    "GradingRun qwen7b-eval has '/models/32b', DifficultyBank qwen7b-bank has '/models/7b'"
)
REJECTED = pod(
    phase="Failed", terminated={"exitCode": VALIDATION_FAILED_EXIT_CODE, "reason": "Error", "message": WORDS}
)
FAILED_BY_POLICY = job(conditions={"Failed": "True"}, reason="PodFailurePolicy")


def test_the_job_fails_at_once_on_the_validation_exit_code() -> None:
    assert INPUT_ERROR_EXIT_CODES == (VALIDATION_FAILED_EXIT_CODE,)


def test_a_rejected_input_is_validation_failed_with_the_stages_words() -> None:
    failure = job_failure(FAILED_BY_POLICY, [REJECTED])
    assert failure is not None and failure.reason == "ValidationFailed"
    assert failure.message.startswith("pod pool-grade-0-abcde container stage rejected its inputs: ")
    assert failure.message.endswith(
        "GradingRun qwen7b-eval has '/models/32b', DifficultyBank qwen7b-bank has '/models/7b'"
    )


def test_other_exits_keep_their_reasons() -> None:
    crashed = pod(phase="Failed", terminated={"exitCode": 1, "reason": "Error", "message": "boom"})
    assert job_failure(FAILED_BY_POLICY, [crashed]).reason == "BackoffLimitExceeded"  # type: ignore[union-attr]
    backoff = job(conditions={"Failed": "True"}, reason="BackoffLimitExceeded")
    assert job_failure(backoff, [REJECTED]).reason == "BackoffLimitExceeded"  # type: ignore[union-attr]


def test_the_distillation_job_status_reads_validation_failed() -> None:
    distil = with_conditions(sample("DistillationJob"), InputsReady="True")
    status = compute_status(
        distil,
        Children(job=FAILED_BY_POLICY, pods=[REJECTED]),
        {},
        datetime.now(UTC),
    )
    assert status["phase"] == "Failed"
    (failed,) = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "ValidationFailed" and "qwen7b-bank has '/models/7b'" in failed["message"]
