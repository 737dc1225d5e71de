"""Security of a stage's pod: Pod Security "restricted", no API token, and the labels the chart's
NetworkPolicies select on.

Callers: adacot_operator.builders.job (pod template) and .volumes (the writable scratch volumes). Pure.
Why: stage pods run model-written programs (code verification) and, on a shared cluster, belong to many
teams; they need no Kubernetes power (results go out through the termination message, progress through
a read-only endpoint the operator reads: adacot.progress.publish), so the pod gets no service-account
token, runs as the image's non-root user (uid/gid 10001) with every capability dropped, no privilege
escalation, the runtime's default seccomp profile and a read-only root filesystem; the places a stage
writes are emptyDir volumes: /tmp and HOME (/home/adacot: the Hugging Face, vLLM, Triton and torch
extension caches all live under it).

Labels: UNTRUSTED_LABEL "true" on pods that execute code nobody reviewed (a code task's candidate
programs: GradingRun questions.task code, SFTJob code evaluation sets, every DistillationJob — its task
comes from its bank, which the spec does not say — and any model with trustRemoteCode); those pods get
the operator's runtimeClassName setting (gVisor, Kata) when the spec sets none. EGRESS_LABEL on
untrusted pods: "none" when every backend is local (no endpoint, no hub download, not multi-node),
else "endpoints"; the chart's NetworkPolicies deny all egress to the first and allow the second only
its values list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from adacot.api import AnyResource
from adacot.api.common import DatasetSpec, ModelSpec, TaskType
from adacot.api.distillation_job import DistillationJob
from adacot.api.generation import Endpoint
from adacot.api.sft_job import SFTJob

RUN_AS = 10001
"""The worker images' user and group (images/worker*/Dockerfile)."""
HOME = "/home/adacot"
UNTRUSTED_LABEL = "adacot.dev/untrusted-code"
EGRESS_LABEL = "adacot.dev/egress"
SCRATCH = {"tmp": "/tmp", "home": HOME}
"""emptyDir volume name -> mount path: where a stage writes besides its output claim."""


def pod_security_context() -> dict[str, Any]:
    """The pod-level half of the restricted profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The container-level half of the restricted profile, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def scratch_volumes() -> list[dict[str, Any]]:
    return [{"name": name, "emptyDir": {}} for name in SCRATCH]


def scratch_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for name, path in SCRATCH.items()]


def _walk(model: BaseModel) -> Iterator[BaseModel]:
    """`model` and every model nested in it (lists included)."""
    yield model
    for name in type(model).model_fields:
        value = getattr(model, name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, BaseModel):
                yield from _walk(child)


def runs_untrusted_code(resource: AnyResource) -> bool:
    """Whether the stage executes code nobody reviewed (see the module docstring)."""
    if isinstance(resource, DistillationJob):
        return True
    return any(
        (isinstance(m, DatasetSpec) and m.task == TaskType.code)
        or (isinstance(m, ModelSpec) and m.trust_remote_code)
        for m in _walk(resource.spec)
    )


def needs_network(resource: AnyResource) -> bool:
    """Whether the stage talks to anything outside its pod: an endpoint, the hub, other nodes."""
    if isinstance(resource, SFTJob) and resource.spec.nodes > 1:
        return True
    return any(
        isinstance(m, Endpoint) or (isinstance(m, ModelSpec) and m.hub_id is not None)
        for m in _walk(resource.spec)
    )


def security_labels(resource: AnyResource) -> dict[str, str]:
    """UNTRUSTED_LABEL and EGRESS_LABEL for untrusted pods; {} for the rest."""
    if not runs_untrusted_code(resource):
        return {}
    return {UNTRUSTED_LABEL: "true", EGRESS_LABEL: "endpoints" if needs_network(resource) else "none"}
