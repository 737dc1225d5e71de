"""Reconcile decisions as data: (resource, children, producers) -> patch, children to create, deletes,
events. No API: the plan is what the handlers carry out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adacot_operator.reconcile import Plan, plan
from adacot_operator.status import Children
from k8s_objects import job, pod, sample, with_conditions

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POOL = sample("GradingRun", "qwen7b-pool")
CHILDREN = [{"kind": "ConfigMap", "metadata": {"name": "qwen7b-pool-grade"}},
            {"kind": "Job", "metadata": {"name": "qwen7b-pool-grade"}}]  # fmt: skip
RUNNING = Children(job=job(active=1), pods=[pod()])


def build() -> list[dict[str, Any]]:
    return CHILDREN


def never() -> list[dict[str, Any]]:
    raise AssertionError("children must not be built here")


def missing_output() -> list[dict[str, Any]]:
    raise ValueError("DistillationJob/qwen7b-distil: input DifficultyBank/qwen7b-bank has no status.output")


def applied(resource: dict[str, Any], p: Plan) -> dict[str, Any]:
    """`resource` after the plan's status patch (a merge patch of top-level status fields)."""
    return {**resource, "status": {**(resource.get("status") or {}), **p.patch}}


def reasons(p: Plan) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in p.events]


def test_first_sight_creates_the_children_and_says_so() -> None:
    p = plan(POOL, Children(), {}, NOW, build)
    assert p.create == CHILDREN and not p.delete_job
    assert p.patch["phase"] == "Pending" and "conditions" in p.patch
    assert reasons(p) == [("Normal", "NotStarted"), ("Normal", "Created")]
    assert "ConfigMap qwen7b-pool-grade" in p.events[-1].message


def test_replanning_an_unchanged_world_writes_and_creates_nothing() -> None:
    """What an operator restart does: the same children and status give an empty plan."""
    first = plan(POOL, RUNNING, {}, NOW, never)
    again = plan(applied(POOL, first), RUNNING, {}, NOW, never)
    assert again.patch == {} and again.create == [] and again.events == [] and not again.delete_job


def test_job_starting_running_then_complete_patches_only_what_changed() -> None:
    pending = applied(POOL, plan(POOL, Children(), {}, NOW, build))
    running = plan(pending, RUNNING, {}, NOW, never)
    assert running.status["phase"] == "Running" and reasons(running) == [("Normal", "PodsRunning")]
    assert set(running.patch) <= {"phase", "conditions", "output", "startTime"}
    done = plan(applied(pending, running), Children(job=job(conditions={"Complete": "True"})), {}, NOW, never)
    assert done.status["phase"] == "Succeeded" and reasons(done) == [("Normal", "JobComplete")]
    assert done.patch["completionTime"] == "2026-01-01T10:05:00Z"


def test_worker_progress_is_never_in_the_operators_patch_while_running() -> None:
    resource = applied(POOL, plan(POOL, RUNNING, {}, NOW, never))
    resource["status"]["progress"] = {"done": 5, "total": 40, "percent": 12.5}
    p = plan(resource, RUNNING, {}, NOW, never)
    assert "progress" not in p.patch and p.status["progress"]["done"] == 5


def test_consumer_waits_without_building() -> None:
    distil = sample("DistillationJob")
    nothing = {("DifficultyBank", "qwen7b-bank"): None, ("GradingRun", "qwen7b-eval"): None}
    p = plan(distil, Children(), nothing, NOW, never)
    assert p.status["phase"] == "WaitingForInputs" and p.create == []
    assert p.events[0].reason == "WaitingForInput" and "qwen7b-bank does not exist yet" in p.events[0].message


def test_producer_without_output_yet_keeps_the_consumer_waiting() -> None:
    bank = with_conditions(sample("DifficultyBank"), Complete="True", Ready="True")
    producers = {("DifficultyBank", "qwen7b-bank"): bank, ("GradingRun", "qwen7b-eval"): bank}
    p = plan(sample("DistillationJob"), Children(), producers, NOW, missing_output)
    assert p.create == [] and p.status["phase"] == "WaitingForInputs"
    found = {c["type"]: c for c in p.status["conditions"]}
    ready = found["InputsReady"]
    assert ready["status"] == "False" and "no status.output" in ready["message"]
    # kstatus agrees with the phase: still reconciling, not ready, and says why
    assert (found["Reconciling"]["status"], found["Reconciling"]["reason"]) == ("True", "WaitingForInputs")
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "WaitingForInputs")
    assert "no status.output" in found["Reconciling"]["message"]


def test_failed_producer_fails_the_consumer_with_a_warning() -> None:
    failed = with_conditions(sample("GradingRun", "qwen7b-eval"), Failed="True")
    bank = with_conditions(sample("DifficultyBank"), Complete="True")
    producers = {("DifficultyBank", "qwen7b-bank"): bank, ("GradingRun", "qwen7b-eval"): failed}
    p = plan(sample("DistillationJob"), Children(), producers, NOW, never)
    assert p.status["phase"] == "Failed" and reasons(p) == [("Warning", "InputFailed")]
    assert "GradingRun qwen7b-eval failed" in p.events[0].message


def test_suspend_deletes_an_unfinished_job_and_resume_recreates_it() -> None:
    running = applied(POOL, plan(POOL, RUNNING, {}, NOW, never))
    suspended = {**running, "spec": {**running["spec"], "suspend": True}}
    p = plan(suspended, RUNNING, {}, NOW, never)
    assert p.delete_job and p.create == [] and p.status["phase"] == "Suspended"
    assert ("Normal", "Suspended") in reasons(p)
    gone = plan(applied(suspended, p), Children(), {}, NOW, never)
    assert not gone.delete_job and gone.create == []
    resumed = {**applied(suspended, p), "spec": {**running["spec"], "suspend": False}}
    back = plan(resumed, Children(), {}, NOW, build)
    assert back.create == CHILDREN and back.status["phase"] == "Pending"


def test_suspending_a_finished_resource_keeps_its_job() -> None:
    done = Children(job=job(conditions={"Complete": "True"}))
    p = plan(sample("GradingRun", "qwen7b-pool", suspend=True), done, {}, NOW, never)
    assert not p.delete_job and p.status["phase"] == "Succeeded"


def test_queued_job_is_left_to_kueue() -> None:
    p = plan(POOL, Children(job=job(suspend=True)), {}, NOW, never)
    assert p.status["phase"] == "Queued" and not p.delete_job and p.create == []


def test_failed_job_and_stuck_pod_warn_once() -> None:
    oom = pod(phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})
    failed_job = job(conditions={"Failed": "True"}, reason="BackoffLimitExceeded")
    failed = plan(POOL, Children(job=failed_job, pods=[oom]), {}, NOW, never)
    assert reasons(failed) == [("Warning", "OOMKilled")]
    stuck = Children(job=job(active=1), pods=[pod(phase="Pending", waiting="ImagePullBackOff")])
    first = plan(POOL, stuck, {}, NOW, never)
    assert ("Warning", "ImagePullError") in reasons(first)
    assert plan(applied(POOL, first), stuck, {}, NOW, never).events == []


def test_sft_without_a_model_is_built_with_the_model_of_its_banks_grading_run() -> None:
    """The handlers' build step (the one that meets builders.children.build_children): the same
    base-model rule as `adacot run`, through the namespace's other resources."""
    from adacot_operator.handlers import _build, _parse

    names = [("GradingRun", "qwen7b-pool"), ("GradingRun", "qwen7b-eval"), ("DifficultyBank", "qwen7b-bank"),
             ("DistillationJob", "qwen7b-distil"), ("SFTJob", "qwen7b-sft")]  # fmt: skip
    bodies = {(kind, name): sample(kind, name) for kind, name in names}
    models = {key: model for key, body in bodies.items() if (model := _parse(key[0], body)) is not None}
    distil = {
        **bodies[("DistillationJob", "qwen7b-distil")],
        "status": {"output": {"claim": "d", "path": "ml/d"}},
    }
    children = _build(
        models[("SFTJob", "qwen7b-sft")], {("DistillationJob", "qwen7b-distil"): distil}, models
    )
    config = next(c for c in children if c["kind"] == "ConfigMap")
    assert "path: /mnt/adacot/claims/models/Qwen2.5-7B-Instruct" in config["data"]["spec.yaml"]
    job = next(c for c in children if c["kind"] == "Job")
    assert "--dataset" in job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_a_job_expired_by_ttl_after_its_outcome_was_recorded_is_not_recreated() -> None:
    done = applied(POOL, plan(POOL, Children(job=job(conditions={"Complete": "True"})), {}, NOW, never))
    gone = plan(done, Children(), {}, NOW, never)  # ttlSecondsAfterFinished deleted Job and pods
    assert gone.status["phase"] == "Succeeded" and gone.create == [] and gone.patch == {}


def test_a_job_expired_before_its_outcome_was_recorded_is_created_again() -> None:
    """The operator was down longer than ttlSecondsAfterFinished: nothing says the stage finished, so
    the Job is created again; the stage finds its complete artifact and only reports it (docs/install.md)."""
    running = applied(POOL, plan(POOL, RUNNING, {}, NOW, never))
    gone = plan(running, Children(), {}, NOW, build)
    assert gone.create == CHILDREN and gone.status["phase"] == "Pending"


def _hashed(obj: dict[str, Any], digest: str) -> dict[str, Any]:
    meta = {**obj.get("metadata", {}), "annotations": {"adacot.dev/spec-hash": digest}}
    return {**obj, "metadata": meta}


def _edited_while(children: Children, built: str) -> Plan:
    """Generation 2 of the pool, status from generation 1; the current spec builds a Job hashed `built`."""
    first = plan(POOL, children, {}, NOW, never)
    edited = {**applied(POOL, first), "metadata": {**POOL["metadata"], "generation": 2}}
    rebuilt = [_hashed(c, built) if c["kind"] == "Job" else c for c in CHILDREN]
    return plan(edited, children, {}, NOW, lambda: rebuilt)


def test_a_spec_edit_that_changes_the_pod_restarts_the_unfinished_stage() -> None:
    running = Children(job=_hashed(job(active=1), "old"), pods=[pod()])
    p = _edited_while(running, built="new")
    assert p.restart and not p.delete_job and p.create == []
    assert ("Normal", "SpecChanged") in reasons(p)


def test_an_edit_that_builds_the_same_job_or_comes_after_the_end_restarts_nothing() -> None:
    running = Children(job=_hashed(job(active=1), "same"), pods=[pod()])
    assert not _edited_while(running, built="same").restart  # e.g. a label on the resource only
    done = Children(job=_hashed(job(conditions={"Complete": "True"}), "old"), pods=[pod()])
    assert not _edited_while(done, built="new").restart  # finished: re-apply the resource to re-run


# ------------------------------------------------------------------------- multi-node gang restarts

GANG = sample("SFTJob", "qwen7b-sft", nodes=2, backoffLimit=2)


def _rank(index: int, code: int, finished: str, message: str = "") -> dict[str, Any]:
    state = {"exitCode": code, "reason": "Error", "finishedAt": finished, "message": message}
    failed = pod(f"qwen7b-sft-sft-{index}-x", phase="Failed", terminated=state)
    failed["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    return failed


FAILED_GANG = Children(
    job=job(conditions={"Failed": "True"}, reason="BackoffLimitExceeded"),
    pods=[_rank(0, 143, "2026-01-01T11:00:09Z"), _rank(1, 137, "2026-01-01T11:00:05Z", "gloo: peer lost")],
)


def test_a_failed_rank_restarts_the_whole_gang_once_and_counts_it() -> None:
    first = plan(GANG, FAILED_GANG, {}, NOW, never)
    assert first.restart and not first.delete_job and first.create == []
    assert first.status["restarts"] == 1 and first.status["phase"] != "Failed"
    reason = first.status["lastRestartReason"]
    assert (
        reason == "node 1 (pod qwen7b-sft-sft-1-x) exited with code 137: gloo: peer lost"
    )  # the first to fail
    running = next(c for c in first.status["conditions"] if c["type"] == "Running")
    assert running["reason"] == "GangRestart" and "gang restart 1 of 2" in running["message"]
    assert [r for r in reasons(first) if r[1] == "GangRestart"] == [("Warning", "GangRestart")]
    # The Job is being deleted (foreground): nothing is counted or deleted again.
    deleting = job(conditions={"Failed": "True"}, reason="BackoffLimitExceeded")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:01Z"
    counted = applied(GANG, first)
    again = plan(counted, Children(job=deleting, pods=FAILED_GANG.pods), {}, NOW, never)
    assert not again.restart and again.status["restarts"] == 1 and again.status["phase"] != "Failed"
    # Gone: created again, the count kept.
    gone = plan(applied(counted, again), Children(), {}, NOW, build)
    assert gone.create == CHILDREN and gone.status["restarts"] == 1


def test_a_gang_out_of_restarts_or_rejected_by_its_stage_fails() -> None:
    spent = {**GANG, "status": {"restarts": 2}}
    out = plan(spent, FAILED_GANG, {}, NOW, never)
    assert not out.restart and out.status["phase"] == "Failed" and out.status["restarts"] == 2
    rejected = Children(
        job=job(conditions={"Failed": "True"}, reason="PodFailurePolicy"),
        pods=[_rank(1, 2, "2026-01-01T11:00:05Z", "dataset has no rows")],
    )
    refused = plan(GANG, rejected, {}, NOW, never)
    assert not refused.restart and refused.status["phase"] == "Failed"
    assert (
        next(c for c in refused.status["conditions"] if c["type"] == "Failed")["reason"] == "ValidationFailed"
    )


def test_a_single_node_sft_failure_is_not_a_gang_restart() -> None:
    single = sample("SFTJob", "qwen7b-sft", nodes=1, backoffLimit=2)
    p = plan(single, FAILED_GANG, {}, NOW, never)
    assert not p.restart and p.status["phase"] == "Failed" and "restarts" not in p.status


def test_an_edit_that_cannot_be_judged_yet_is_not_observed_and_is_judged_later() -> None:
    """observedGeneration advances only when the edit was acted on: here the new spec does not build
    (an input's output is unknown), so it stays 1 and the next reconcile judges the edit again."""
    running = Children(job=_hashed(job(active=1), "old"), pods=[pod()])
    first = plan(POOL, running, {}, NOW, never)
    edited = {**applied(POOL, first), "metadata": {**POOL["metadata"], "generation": 2}}
    deferred = plan(edited, running, {}, NOW, missing_output)
    assert not deferred.restart and deferred.status["observedGeneration"] == 1
    assert {c["observedGeneration"] for c in deferred.status["conditions"]} == {1}
    rebuilt = [_hashed(c, "new") if c["kind"] == "Job" else c for c in CHILDREN]
    judged = plan(applied(edited, deferred), running, {}, NOW, lambda: rebuilt)
    assert judged.restart and judged.status["observedGeneration"] == 2
