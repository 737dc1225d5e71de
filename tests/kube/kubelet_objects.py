"""The API objects the local Job runner writes: Pods made from a Job's template, Pod status for each
container state, and the Job status fields (counts, completedIndexes, conditions). Pure functions.

Called by tests/kube/kubelet.py only. The shapes follow the Job controller and kubelet of Kubernetes
1.32 closely enough for kubectl, kopf and the operator's failure classification; not modelled: pod
conditions beyond scheduling/readiness, restartCount (restartPolicy Never), the 1.31+
SuccessCriteriaMet / FailureTarget conditions.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .kubelet_pods import PodConfigError, PodSandbox

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
JobKey = tuple[str, str]


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(stamp: str) -> float:
    started = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - started).total_seconds()


@dataclass
class PodRun:
    """One pod this kubelet created, from Pending to a terminal phase (or deletion)."""

    job: JobKey
    job_uid: str
    index: int | None
    pod: dict[str, Any]
    phase: str = "Pending"
    sandbox: PodSandbox | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    deleted: bool = False
    ip: str = "127.0.0.1"
    """The pod's own loopback address (status.podIP), set by the kubelet before the container starts."""

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def active(self) -> bool:
        return not self.deleted and self.phase in ("Pending", "Running")


def job_key(obj: dict[str, Any]) -> JobKey:
    return obj["metadata"].get("namespace") or "default", obj["metadata"]["name"]


def indexed(job: dict[str, Any]) -> bool:
    return bool(job["spec"].get("completionMode") == "Indexed")


def set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str
) -> None:
    """Set one condition; lastTransitionTime changes only when its status flips."""
    for condition in conditions:
        if condition["type"] == kind:
            if condition["status"] != status:
                condition["lastTransitionTime"] = now()
            condition.update(status=status, reason=reason, message=message, lastProbeTime=now())
            return
    conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                       "lastProbeTime": now(), "lastTransitionTime": now()})  # fmt: skip


def counts(job: dict[str, Any], runs: list[PodRun]) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "active": sum(r.active for r in runs),
        "ready": sum(r.phase == "Running" for r in runs),
        "succeeded": sum(r.phase == "Succeeded" for r in runs),
        "failed": sum(r.phase == "Failed" for r in runs),
    }
    if indexed(job):
        counts["completedIndexes"] = ranges(sorted({r.index for r in runs if r.phase == "Succeeded"}))
    return counts


def ranges(indexes: list[Any]) -> str:
    """[0, 1, 2, 4] -> "0-2,4" (the Job API's completedIndexes format)."""
    parts: list[list[int]] = []
    for index in indexes:
        if parts and index == parts[-1][1] + 1:
            parts[-1][1] = index
        else:
            parts.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def pod_manifest(job: dict[str, Any], index: int | None) -> dict[str, Any]:
    """A Pod as the Job controller makes it from the Job's template."""
    meta, template = job["metadata"], job["spec"]["template"]
    name = meta["name"] + ("" if index is None else f"-{index}") + "-" + secrets.token_hex(3)[:5]
    tags = {"batch.kubernetes.io/job-name": meta["name"], "job-name": meta["name"],
            "controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"],
            **({} if index is None else {INDEX_KEY: str(index)})}  # fmt: skip
    labels = {**(template.get("metadata") or {}).get("labels", {}), **tags}
    annotations = {**(template.get("metadata") or {}).get("annotations", {})}
    spec = {**template["spec"], "nodeName": "local-kubelet"}
    if index is not None:  # the controller's own env var, read from the annotation
        annotations[INDEX_KEY] = str(index)
        spec["hostname"] = f"{meta['name']}-{index}"
        source = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
        env = [{"name": "JOB_COMPLETION_INDEX", "valueFrom": source}]
        spec["containers"] = [{**c, "env": [*(c.get("env") or []), *env]} for c in spec["containers"]]
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec,
            "metadata": {"name": name, "namespace": job_key(job)[0], "labels": labels,
                         "annotations": annotations, "ownerReferences": [owner]}}  # fmt: skip


def container(run: PodRun, state: dict[str, Any], ready: bool = False) -> list[dict[str, Any]]:
    container = run.pod["spec"]["containers"][0]
    return [{"name": container["name"], "image": container.get("image", ""), "ready": ready,
             "restartCount": 0, "started": "running" in state, "state": state}]  # fmt: skip


def waiting_status(run: PodRun, error: PodConfigError) -> dict[str, Any]:
    if error.reason == "Unschedulable":
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": str(error), "lastTransitionTime": now()}  # fmt: skip
        return {"phase": "Pending", "conditions": [condition]}
    state = {"waiting": {"reason": error.reason, "message": str(error)}}
    return {"phase": "Pending", "containerStatuses": container(run, state)}


def running_status(run: PodRun) -> dict[str, Any]:
    conditions = [{"type": t, "status": "True", "lastTransitionTime": now()}
                  for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]  # fmt: skip
    state = {"running": {"startedAt": run.started_at}}
    return {"phase": "Running", "podIP": run.ip, "podIPs": [{"ip": run.ip}], "hostIP": "127.0.0.1",
            "startTime": run.started_at,
            "conditions": conditions, "containerStatuses": container(run, state, ready=True)}  # fmt: skip


def terminated_status(run: PodRun, code: int, message: str) -> dict[str, Any]:
    terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
                  "startedAt": run.started_at, "finishedAt": now()}  # fmt: skip
    conditions = [{"type": t, "status": "False", "reason": "PodCompleted" if code == 0 else "PodFailed",
                   "lastTransitionTime": now()} for t in ("Ready", "ContainersReady")]  # fmt: skip
    return {"phase": run.phase, "conditions": conditions,
            "containerStatuses": container(run, {"terminated": terminated})}  # fmt: skip
