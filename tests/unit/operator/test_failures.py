"""Pod and Job states -> readable failure reasons (a table, like Math-Verify's regression tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from adacot_operator.failures import IMAGE_PULL_GRACE, creation_failure, job_failure, pod_stall
from k8s_objects import job, pod

FAILED = {"Failed": "True"}
BACKOFF = job(conditions=FAILED, reason="BackoffLimitExceeded")
BACKOFF_REASON = "BackoffLimitExceeded"
OOM = {"exitCode": 137, "reason": "OOMKilled"}

FAILED_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], str]] = [
    ("oom", BACKOFF,
     [pod(phase="Failed", terminated=OOM)], "OOMKilled"),
    ("oom in last state of a restarted container", BACKOFF,
     [pod(waiting="CrashLoopBackOff", last_terminated=OOM)], "OOMKilled"),
    ("evicted", BACKOFF,
     [pod(phase="Failed", reason="Evicted")], "Evicted"),
    ("deadline", job(conditions=FAILED, reason="DeadlineExceeded"),
     [pod(phase="Failed", terminated={"exitCode": 143, "reason": "Error"})], "DeadlineExceeded"),
    ("plain exit code", BACKOFF,
     [pod(phase="Failed", terminated={"exitCode": 1, "reason": "Error", "message": "bad row at q.jsonl:3"})],
     "BackoffLimitExceeded"),
    ("crash loop in a failed job is the backoff", BACKOFF,
     [pod(waiting="CrashLoopBackOff", last_terminated={"exitCode": 2})], BACKOFF_REASON),
    ("image never pulled until the deadline", job(conditions=FAILED, reason="DeadlineExceeded"),
     [pod(phase="Pending", waiting="ImagePullBackOff")], "ImagePullError"),
    ("unknown job reason, no pods", job(conditions=FAILED, reason="PodFailurePolicy"), [], BACKOFF_REASON),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "the_job", "pods", "reason"), FAILED_CASES, ids=[c[0] for c in FAILED_CASES]
)
def test_job_failure_reason(
    case: str, the_job: dict[str, Any], pods: list[dict[str, Any]], reason: str
) -> None:
    failure = job_failure(the_job, pods)
    assert failure is not None and failure.reason == reason, case
    assert failure.message


def test_exit_message_names_pod_code_and_stage_words() -> None:
    failed = pod(
        phase="Failed", terminated={"exitCode": 1, "reason": "Error", "message": "bad row at q.jsonl:3"}
    )
    failure = job_failure(BACKOFF, [failed])
    assert failure is not None
    assert "pool-grade-0-abcde" in failure.message and "code 1" in failure.message
    assert "q.jsonl:3" in failure.message


def test_long_log_tail_is_capped() -> None:
    failed = pod(phase="Failed", terminated={"exitCode": 1, "message": "x" * 5000 + " the last words"})
    failure = job_failure(BACKOFF, [failed])
    assert failure is not None and len(failure.message) < 500 and failure.message.endswith("the last words")


@pytest.mark.parametrize(
    "the_job",
    [job(active=1), job(conditions={"Failed": "False"}), job(conditions={"Complete": "True"})],
    ids=["active", "failed-false", "complete"],
)
def test_no_failure_while_job_has_not_failed(the_job: dict[str, Any]) -> None:
    assert job_failure(the_job, [pod(phase="Failed", terminated=OOM)]) is None


STALL_CASES = [
    ("ErrImagePull", pod(phase="Pending", waiting="ErrImagePull"), "ImagePullError"),
    ("ImagePullBackOff", pod(phase="Pending", waiting="ImagePullBackOff"), "ImagePullError"),
    ("InvalidImageName", pod(phase="Pending", waiting="InvalidImageName"), "ImagePullError"),
    ("CrashLoopBackOff", pod(waiting="CrashLoopBackOff"), "CrashLoop"),
    ("Unschedulable", pod(phase="Pending", unschedulable=True), "Unschedulable"),
    ("running", pod(), None),
    ("creating", pod(phase="Pending", waiting="ContainerCreating"), None),
]


@pytest.mark.parametrize(("case", "the_pod", "reason"), STALL_CASES, ids=[c[0] for c in STALL_CASES])
def test_pod_stall(case: str, the_pod: dict[str, Any], reason: str | None) -> None:
    stall = pod_stall([pod(), the_pod])
    assert (stall.reason if stall else None) == reason, case


def test_unschedulable_message_is_the_schedulers() -> None:
    stall = pod_stall([pod(phase="Pending", unschedulable=True)])
    assert stall is not None and "nvidia.com/gpu" in stall.message


def _born(the_pod: dict[str, Any], seconds_ago: float, now: datetime) -> dict[str, Any]:
    created = (now - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
    return {**the_pod, "metadata": {**the_pod.get("metadata", {}), "creationTimestamp": created}}


@pytest.mark.parametrize(
    ("waiting", "seconds_ago", "reported"),
    [("ErrImagePull", 10, False), ("ImagePullBackOff", 10, False), ("ImagePullBackOff", 600, True),
     ("InvalidImageName", 10, True)],  # a bad name never heals: at once
)  # fmt: skip
def test_a_pull_that_may_still_succeed_is_reported_after_the_grace(
    waiting: str, seconds_ago: float, reported: bool
) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    stall = pod_stall([_born(pod(phase="Pending", waiting=waiting), seconds_ago, now)], now)
    assert (stall is not None and stall.reason == "ImagePullError") is reported
    assert seconds_ago < IMAGE_PULL_GRACE.total_seconds() or reported


def test_failed_create_events_say_why_the_job_has_no_pods() -> None:
    quota = (
        'pods "pool-grade-0-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=0, '
        "limited: pods=0"
    )
    at = "2026-12-03T12:0{}:00Z".format
    events = [
        {"reason": "FailedCreate", "lastTimestamp": at(0), "message": "Error creating: old"},
        {"reason": "FailedCreate", "lastTimestamp": at(1), "message": f"Error creating: {quota}"},
        {"reason": "SuccessfulCreate", "lastTimestamp": at(2), "message": "Created pod"},
    ]
    failure = creation_failure(events)
    assert failure is not None and failure.reason == "FailedCreate"
    assert failure.message == f"the stage's pods cannot be created: {quota}"  # the latest refusal, verbatim
    assert creation_failure(events[2:]) is None
