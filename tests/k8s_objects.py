"""Kubernetes objects as the API server and kubelet write them (Job, pod, resource bodies), for the
operator's table tests. Shapes follow batch/v1 Job and core/v1 Pod status as served by a real cluster;
only the fields the operator reads are filled."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from adacot.api.loader import dump_resource, load_resources

SAMPLES = Path(__file__).resolve().parents[1] / "crds" / "samples" / "distill.yaml"
T0 = "2026-01-01T10:00:00Z"
T1 = "2026-01-01T10:05:00Z"


def sample(kind: str, name: str | None = None, *, generation: int = 1, **spec: Any) -> dict[str, Any]:
    """A resource body from crds/samples/distill.yaml as the API server returns it (namespace,
    uid, generation), with `spec` keys overridden."""
    docs = [dump_resource(r) for r in load_resources(SAMPLES) if r.kind == kind]
    body = copy.deepcopy(next(d for d in docs if name is None or d["metadata"]["name"] == name))
    body["metadata"].update(namespace="ml", uid=f"uid-{body['metadata']['name']}", generation=generation)
    body["spec"].update(spec)
    return body


def with_conditions(body: dict[str, Any], **conditions: str) -> dict[str, Any]:
    """`body` with status conditions set (type=status), e.g. Complete="True"."""
    body = copy.deepcopy(body)
    body["status"] = {
        "conditions": [
            {"type": t, "status": s, "reason": f"{t}Reason", "lastTransitionTime": T0}
            for t, s in conditions.items()
        ]
    }
    return body


def job(
    *,
    conditions: dict[str, str] | None = None,
    reason: str = "",
    active: int = 0,
    suspend: bool = False,
    out_dir: str = "/mnt/adacot/output/ml/GradingRun/pool",
) -> dict[str, Any]:
    """A stage Job with the operator's pod layout (output claim mounted at /mnt/adacot/output)."""
    status: dict[str, Any] = {"startTime": T0, "active": active} if not suspend else {}
    status["conditions"] = [
        {"type": t, "status": s, "reason": reason if t == "Failed" else "", "message": f"Job has {t}"}
        for t, s in (conditions or {}).items()
    ]
    if (conditions or {}).get("Complete") == "True":
        status["completionTime"] = T1
    container = {
        "name": "stage",
        "env": [{"name": "ADACOT_OUTPUT_DIR", "value": out_dir}],
        "volumeMounts": [{"name": "output", "mountPath": "/mnt/adacot/output"}],
    }
    template = {
        "containers": [container],
        "volumes": [{"name": "output", "persistentVolumeClaim": {"claimName": "pool-out"}}],
    }
    return {
        "metadata": {"name": "pool-grade", "namespace": "ml"},
        "spec": {"suspend": suspend, "template": {"spec": template}},
        "status": status,
    }


def pod(
    name: str = "pool-grade-0-abcde",
    *,
    phase: str = "Running",
    waiting: str | None = None,
    terminated: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
    reason: str | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A stage pod: one container `stage` in the given state."""
    cs: dict[str, Any] = {"name": "stage", "state": {}}
    if waiting:
        cs["state"]["waiting"] = {"reason": waiting, "message": f"{waiting} for image example/worker:bad"}
    if terminated is not None:
        cs["state"]["terminated"] = {"finishedAt": T1, **terminated}
    if last_terminated is not None:
        cs["lastState"] = {"terminated": last_terminated}
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [cs]}
    if reason:
        status.update(reason=reason, message="The node was low on resource: memory.")
    if unschedulable:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes have nvidia.com/gpu",
            }
        ]
        status["containerStatuses"] = []
    return {"metadata": {"name": name, "namespace": "ml"}, "status": status}
