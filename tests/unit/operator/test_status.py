"""Status computation as tables: (resource, children, producers) -> conditions, phase, reason, fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from adacot_operator.status import Children, compute_status
from k8s_objects import job, pod, sample, with_conditions

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
POOL = sample("GradingRun", "qwen7b-pool")
DISTIL = sample("DistillationJob")
BANK = sample("DifficultyBank")
DONE = {"Complete": "True"}
FAILED = {"Failed": "True"}
PRODUCERS_DONE = {
    ("DifficultyBank", "qwen7b-bank"): with_conditions(BANK, Complete="True", Ready="True"),
    ("GradingRun", "qwen7b-eval"): with_conditions(POOL, Complete="True"),
}
SUMMARY = {"kind": "GradingRun", "name": "qwen7b-pool", "questions": 40, "accuracy": 0.25,
           "level_counts": {"0": 10, "1": 30}, "distribution": {"0": 0.25, "1": 0.75},
           "unverifiable": 2}  # fmt: skip
OK_POD = pod(phase="Succeeded", terminated={"exitCode": 0, "message": json.dumps(SUMMARY)})
RUNNING = Children(job=job(active=1), pods=[pod()])
COMPLETE = Children(job=job(conditions=DONE), pods=[OK_POD])


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


CASES: list[tuple[str, dict[str, Any], Children, dict[Any, Any], str, dict[str, tuple[str, str]]]] = [
    ("no inputs, no job yet", POOL, Children(), {}, "Pending",
     {"InputsReady": ("True", "InputsReady"), "Running": ("False", "NotStarted")}),
    ("producer missing", DISTIL, Children(), {**PRODUCERS_DONE, ("DifficultyBank", "qwen7b-bank"): None},
     "WaitingForInputs", {"InputsReady": ("False", "WaitingForInput"), "Failed": ("False", "NoFailure")}),
    ("producer running", DISTIL, Children(),
     {**PRODUCERS_DONE, ("GradingRun", "qwen7b-eval"): with_conditions(POOL, Running="True")},
     "WaitingForInputs", {"InputsReady": ("False", "WaitingForInput")}),
    ("producer failed", DISTIL, Children(),
     {**PRODUCERS_DONE, ("GradingRun", "qwen7b-eval"): with_conditions(POOL, Failed="True")},
     "Failed", {"InputsReady": ("False", "InputFailed"), "Failed": ("True", "InputFailed")}),
    ("inputs done, job being created", DISTIL, Children(), PRODUCERS_DONE, "Pending",
     {"InputsReady": ("True", "InputsReady")}),
    ("queued by kueue", POOL, Children(job=job(suspend=True)), {}, "Queued",
     {"Admitted": ("False", "WaitingForAdmission"), "Running": ("False", "NotStarted")}),
    ("pods starting", POOL, Children(job=job(active=1), pods=[pod(phase="Pending")]),
     {}, "Pending", {"Admitted": ("True", "Admitted"), "Running": ("False", "PodsStarting")}),
    ("running", POOL, RUNNING, {}, "Running",
     {"Running": ("True", "PodsRunning")}),
    ("image pull stall", POOL, Children(job=job(active=1), pods=[pod(waiting="ImagePullBackOff")]),
     {}, "Pending", {"Running": ("False", "ImagePullError"), "Failed": ("False", "NoFailure")}),
    ("unschedulable", POOL, Children(job=job(active=1), pods=[pod(phase="Pending", unschedulable=True)]),
     {}, "Pending", {"Running": ("False", "Unschedulable")}),
    ("crash loop", POOL, Children(job=job(active=1), pods=[pod(waiting="CrashLoopBackOff")]), {}, "Pending",
     {"Running": ("False", "CrashLoop")}),
    ("complete", POOL, COMPLETE, {}, "Succeeded",
     {"Complete": ("True", "JobComplete"), "Running": ("False", "Completed")}),
    ("bank complete is Ready", BANK, Children(job=job(conditions=DONE)), {}, "Ready",
     {"Complete": ("True", "JobComplete"), "Ready": ("True", "BankReady")}),
    ("oom", POOL, Children(job=job(conditions=FAILED, reason="BackoffLimitExceeded"),
                           pods=[pod(phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})]),
     {}, "Failed", {"Failed": ("True", "OOMKilled"), "Running": ("False", "OOMKilled")}),
    ("deadline", POOL, Children(job=job(conditions=FAILED, reason="DeadlineExceeded")), {}, "Failed",
     {"Failed": ("True", "DeadlineExceeded")}),
    ("backoff", POOL, Children(job=job(conditions=FAILED, reason="BackoffLimitExceeded")), {}, "Failed",
     {"Failed": ("True", "BackoffLimitExceeded")}),
    ("evicted", POOL, Children(job=job(conditions=FAILED, reason="BackoffLimitExceeded"),
                               pods=[pod(phase="Failed", reason="Evicted")]), {}, "Failed",
     {"Failed": ("True", "Evicted")}),
    ("suspended before start", sample("GradingRun", "qwen7b-pool", suspend=True), Children(), {}, "Suspended",
     {"Suspended": ("True", "SuspendedBySpec"), "Running": ("False", "Suspended")}),
    ("suspended while running (job still there)", sample("GradingRun", "qwen7b-pool", suspend=True),
     RUNNING, {}, "Suspended", {"Suspended": ("True", "SuspendedBySpec")}),
    ("invalid spec", sample("GradingRun", "qwen7b-pool", shards=0), Children(), {}, "Failed",
     {"Failed": ("True", "ValidationFailed")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "resource", "children", "producers", "phase", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_status_table(
    case: str,
    resource: dict[str, Any],
    children: Children,
    producers: dict[Any, Any],
    phase: str,
    expected: dict[str, tuple[str, str]],
) -> None:
    status = compute_status(resource, children, producers, NOW)
    got = conditions(status)
    assert status["phase"] == phase, (case, got)
    for type_, want in expected.items():
        assert got[type_] == want, (case, type_)
    assert status["observedGeneration"] == 1


@pytest.mark.parametrize("kind", ["GradingRun", "DifficultyBank", "DistillationJob", "SFTJob"])
def test_every_condition_type_is_always_present(kind: str) -> None:
    assert set(conditions(compute_status(sample(kind), Children(), {}, NOW))) == {
        "InputsReady", "Admitted", "Running", "Suspended", "Complete", "Failed",
        "Ready", "Reconciling", "Stalled"}  # fmt: skip


FAILED_EVAL = with_conditions(POOL, Failed="True")
#: (Ready, Reconciling, Stalled) per phase, as kstatus reads them (sigs.k8s.io/cli-utils/pkg/kstatus).
KSTATUS = [
    ("WaitingForInputs", DISTIL, Children(), {**PRODUCERS_DONE, ("DifficultyBank", "qwen7b-bank"): None},
     (("False", "WaitingForInputs"), ("True", "WaitingForInputs"), ("False", "NotStalled"))),
    ("Queued", POOL, Children(job=job(suspend=True)), {},
     (("False", "Queued"), ("True", "Queued"), ("False", "NotStalled"))),
    ("Pending", POOL, Children(), {}, (("False", "Pending"), ("True", "Pending"), ("False", "NotStalled"))),
    ("Running", POOL, RUNNING, {}, (("False", "Running"), ("True", "Running"), ("False", "NotStalled"))),
    ("Succeeded", POOL, COMPLETE, {},
     (("True", "Succeeded"), ("False", "Succeeded"), ("False", "NotStalled"))),
    ("Ready", BANK, Children(job=job(conditions=DONE)), {},
     (("True", "BankReady"), ("False", "Ready"), ("False", "NotStalled"))),
    ("Failed", POOL, Children(job=job(conditions=FAILED, reason="DeadlineExceeded")), {},
     (("False", "DeadlineExceeded"), ("False", "DeadlineExceeded"), ("True", "DeadlineExceeded"))),
    ("Failed", sample("GradingRun", "qwen7b-pool", shards=0), Children(), {},
     (("False", "ValidationFailed"), ("False", "ValidationFailed"), ("True", "ValidationFailed"))),
    ("Failed", DISTIL, Children(), {**PRODUCERS_DONE, ("GradingRun", "qwen7b-eval"): FAILED_EVAL},
     (("False", "InputFailed"), ("False", "InputFailed"), ("True", "InputFailed"))),
    ("Suspended", sample("GradingRun", "qwen7b-pool", suspend=True), RUNNING, {},
     (("False", "Suspended"), ("False", "Suspended"), ("False", "NotStalled"))),
]  # fmt: skip


@pytest.mark.parametrize(("phase", "resource", "children", "producers", "want"), KSTATUS)
def test_kstatus_conditions_follow_the_phase(
    phase: str,
    resource: dict[str, Any],
    children: Children,
    producers: dict[Any, Any],
    want: tuple[tuple[str, str], ...],
) -> None:
    status = compute_status(resource, children, producers, NOW)
    got = conditions(status)
    assert status["phase"] == phase
    assert (got["Ready"], got["Reconciling"], got["Stalled"]) == want
    assert status["observedGeneration"] == resource["metadata"]["generation"]


def test_kstatus_messages_say_why() -> None:
    running = {c["type"]: c["message"] for c in compute_status(POOL, RUNNING, {}, NOW)["conditions"]}
    assert running["Reconciling"] == "PodsRunning: 1 pod(s) active"
    stuck = Children(job=job(active=1), pods=[pod(waiting="ImagePullBackOff")])
    pulling = {c["type"]: c for c in compute_status(POOL, stuck, {}, NOW)["conditions"]}
    assert pulling["Reconciling"]["message"].startswith("ImagePullError")
    invalid = compute_status(sample("GradingRun", "qwen7b-pool", shards=0), Children(), {}, NOW)
    stalled = next(c for c in invalid["conditions"] if c["type"] == "Stalled")
    assert "spec.shards" in stalled["message"]


def test_ready_stays_when_a_finished_job_is_gone() -> None:
    """ttlSecondsAfterFinished deletes the Job: status keeps what it recorded, Ready included."""
    done = compute_status(POOL, COMPLETE, {}, NOW)
    later = compute_status({**POOL, "status": done}, Children(), {}, LATER)
    assert conditions(later)["Ready"] == ("True", "Succeeded") and later["metrics"] == done["metrics"]
    failed = compute_status(POOL, Children(job=job(conditions=FAILED, reason="DeadlineExceeded")), {}, NOW)
    gone = compute_status({**POOL, "status": failed}, Children(), {}, LATER)
    assert conditions(gone)["Stalled"] == ("True", "DeadlineExceeded") and gone["phase"] == "Failed"


def test_transition_time_changes_only_on_a_flip() -> None:
    first = compute_status(POOL, Children(job=job(active=1), pods=[pod(phase="Pending")]), {}, NOW)
    again = compute_status({**POOL, "status": first}, RUNNING, {}, LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in again["conditions"]}
    assert times["Running"] == "2026-01-01T12:30:00Z"  # False -> True: flipped
    assert times["Admitted"] == times["Complete"] == "2026-01-01T12:00:00Z"  # unchanged
    reasons_only = compute_status({**POOL, "status": again}, RUNNING, {}, NOW)
    assert reasons_only["conditions"] == again["conditions"]


def test_summary_output_and_times_from_a_complete_job() -> None:
    status = compute_status(POOL, COMPLETE, {}, NOW)
    assert status["metrics"] == {"records": 40, "accuracy": 0.25, "levelCounts": {"0": 10, "1": 30}}
    assert status["distribution"] == {"0": 0.25, "1": 0.75} and status["unverifiable"] == 2
    assert status["output"] == {
        "claim": "qwen7b-pool-grade",
        "path": "ml/GradingRun/qwen7b-pool",
        "records": 40,
    }
    assert (
        status["startTime"] == "2026-01-01T10:00:00Z" and status["completionTime"] == "2026-01-01T10:05:00Z"
    )


def test_latest_successful_shard_message_wins_and_bad_json_is_ignored() -> None:
    early = pod("a", phase="Succeeded", terminated={"exitCode": 0, "message": json.dumps({"questions": 5}),
                                                   "finishedAt": "2026-01-01T10:01:00Z"})  # fmt: skip
    garbage = pod("b", phase="Succeeded", terminated={"exitCode": 0, "message": "Traceback ...",
                                                     "finishedAt": "2026-01-01T10:09:00Z"})  # fmt: skip
    status = compute_status(POOL, Children(job=job(conditions=DONE), pods=[early, OK_POD, garbage]), {}, NOW)
    assert status["output"]["records"] == 40


def test_out_of_range_summary_values_are_dropped_not_raised() -> None:
    bad = pod(
        phase="Succeeded", terminated={"exitCode": 0, "message": json.dumps({"accuracy": 7, "questions": 3})}
    )
    status = compute_status(POOL, Children(job=job(conditions=DONE), pods=[bad]), {}, NOW)
    assert status["metrics"]["records"] == 3 and "accuracy" not in status["metrics"]
    assert status["phase"] == "Succeeded"


def test_progress_is_kept_while_running_and_closed_on_success() -> None:
    running = {**POOL, "status": {"progress": {"done": 3, "total": 40, "percent": 7.5}}}
    status = compute_status(running, RUNNING, {}, NOW)
    assert status["progress"] == {"done": 3, "total": 40, "percent": 7.5}
    done = compute_status({**running, "status": status}, COMPLETE, {}, NOW)
    assert done["progress"] == {"done": 40, "total": 40, "percent": 100.0}


def test_progress_read_from_the_pod_is_validated_before_it_reaches_status() -> None:
    running = {**POOL, "status": {"progress": {"done": 3, "total": 40, "percent": 7.5}}}
    read = Children(job=RUNNING.job, pods=RUNNING.pods, progress={"done": 9, "total": 40, "percent": 22.5})
    assert compute_status(running, read, {}, NOW)["progress"] == {"done": 9, "total": 40, "percent": 22.5}
    for junk in ({"done": -1}, {"percent": 900}, {"claim": "other"}, None):
        forged = Children(job=RUNNING.job, pods=RUNNING.pods, progress=junk)
        kept = compute_status(running, forged, {}, NOW)["progress"]
        assert kept == {"done": 3, "total": 40, "percent": 7.5}


def test_a_forged_status_output_is_put_back_to_the_spec_location() -> None:
    """status.output's claim and path are the operator's, from the spec: a write by anyone else (a
    compromised pod with API access) is overwritten on the next reconcile, running or complete."""
    forged = {**POOL, "status": {"output": {"claim": "victim", "path": "their/data", "records": 1}}}
    spec_location = {"claim": "qwen7b-pool-grade", "path": "ml/GradingRun/qwen7b-pool"}
    running = compute_status(forged, RUNNING, {}, NOW)
    assert {k: running["output"][k] for k in ("claim", "path")} == spec_location
    done = compute_status(forged, COMPLETE, {}, NOW)
    assert done["output"] == {**spec_location, "records": 40}  # records from the Job's own message


def test_a_stage_too_short_for_any_progress_read_closes_at_its_summary_count() -> None:
    done = compute_status(POOL, COMPLETE, {}, NOW)
    assert done["progress"] == {"done": 40, "total": 40, "percent": 100.0}  # SUMMARY's questions


def test_finished_stays_finished_when_the_job_is_gone() -> None:
    done = compute_status(POOL, COMPLETE, {}, NOW)
    later = compute_status({**POOL, "status": done}, Children(), {}, LATER)
    assert later["phase"] == "Succeeded" and later["metrics"] == done["metrics"]
    assert later["conditions"] == done["conditions"]


def test_inputs_stay_ready_once_the_job_exists() -> None:
    producers = {**PRODUCERS_DONE, ("DifficultyBank", "qwen7b-bank"): None}
    status = compute_status(DISTIL, RUNNING, producers, NOW)
    assert conditions(status)["InputsReady"] == ("True", "InputsReady") and status["phase"] == "Running"


def test_messages_name_the_awaited_producer_and_the_invalid_field() -> None:
    waiting = compute_status(
        DISTIL, Children(), {**PRODUCERS_DONE, ("DifficultyBank", "qwen7b-bank"): None}, NOW
    )
    message = next(c["message"] for c in waiting["conditions"] if c["type"] == "InputsReady")
    assert message == "DifficultyBank qwen7b-bank does not exist yet"
    invalid = compute_status(sample("GradingRun", "qwen7b-pool", shards=0), Children(), {}, NOW)
    assert "spec.shards" in next(c["message"] for c in invalid["conditions"] if c["type"] == "Failed")


def test_generation_is_recorded_on_status_and_conditions() -> None:
    status = compute_status(sample("GradingRun", "qwen7b-pool", generation=4), Children(), {}, NOW)
    assert status["observedGeneration"] == 4
    assert {c["observedGeneration"] for c in status["conditions"]} == {4}


def test_grading_counts_of_cut_off_and_prm_truncated_answers_reach_status() -> None:
    message = json.dumps({**SUMMARY, "truncated": 3, "prm_truncated": 5})
    done = pod(phase="Succeeded", terminated={"exitCode": 0, "message": message})
    status = compute_status(POOL, Children(job=job(conditions=DONE), pods=[done]), {}, NOW)
    assert (status["truncated"], status["prmTruncated"]) == (3, 5)
