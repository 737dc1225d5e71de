"""The stage's batch/v1 Job: pod template (container, env, compute, placement) and Job policy.

Callers: adacot_operator.builders.children (build_children; also `is_multi_node`, which decides the
headless Service). Pure functions returning Kubernetes-shaped dicts; the pod's volumes and mounts come
in as arguments (adacot_operator.builders.volumes).
Settings are defaults *under* the spec: spec.image, spec.serviceAccountName, spec.queueName win over the
operator's; nodeSelector keys and tolerations/imagePullSecrets are unions (the spec wins a key clash);
affinity, priorityClassName and runtimeClassName come from the spec when set.
Secrets travel as `secretKeyRef` env vars named by `SecretRef.env_var` (what the stages read), so
no secret value is ever in a manifest. Failure policy: exit code 2 (click's usage error: a spec or
flag the stage rejects; also inputs that contradict each other, reported as ValidationFailed) fails
the Job at once; a pod disrupted by the cluster (DisruptionTarget: preemption, eviction, node drain)
does not count against backoffLimit (except in a multi-node gang: see `job`). Exit code 1 is both an input
error the stage reports and an unexpected crash, so it is retried up to backoffLimit.
Security (adacot_operator.builders.security): no service-account token, the restricted Pod Security
profile, read-only root filesystem; the container declares the progress port, binds it on its pod IP
(downward API ADACOT_POD_IP) and the operator reads it (adacot_operator.progress).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adacot.api import AnyResource
from adacot.api.common import SecretRef
from adacot.api.sft_job import SFTJob
from adacot.api.stage_pod import (
    OUTPUT_DIR_ENV,
    POD_IP_ENV,
    PROGRESS_PORT,
    PROGRESS_PORT_ENV,
    VALIDATION_FAILED_EXIT_CODE,
)
from adacot.api.workload import EnvVar, Scheduling, secret_refs
from adacot_operator.builders.security import (
    HOME,
    container_security_context,
    pod_security_context,
    runs_untrusted_code,
    security_labels,
)
from adacot_operator.names import COMPLETION_INDEX_KEY, QUEUE_LABEL, child_metadata, child_name, labels
from adacot_operator.settings import OperatorSettings

CONTAINER = "stage"
INPUT_ERROR_EXIT_CODES = (VALIDATION_FAILED_EXIT_CODE,)
"""Exit codes meaning "the stage rejected its input": retrying cannot help, so the Job fails."""
COMPLETION_INDEX = f"metadata.annotations['{COMPLETION_INDEX_KEY}']"


def secret_env(ref: SecretRef, name: str | None = None) -> dict[str, Any]:
    """An env var taking its value from a Secret key (default name: `ref.env_var`)."""
    return {"name": name or ref.env_var, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _env_var(var: EnvVar) -> dict[str, Any]:
    return (
        secret_env(var.secret_key_ref, var.name)
        if var.secret_key_ref
        else {"name": var.name, "value": var.value}
    )


def container_env(resource: AnyResource, settings: OperatorSettings, output_dir: str) -> list[dict[str, Any]]:
    """Env of the stage container. Precedence on a name clash: adacot's own variables, then the
    spec's env, then the settings' extra env."""
    env: list[dict[str, Any]] = [
        {"name": OUTPUT_DIR_ENV, "value": output_dir},
        {"name": PROGRESS_PORT_ENV, "value": str(PROGRESS_PORT)},
        {"name": POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOME", "value": HOME},
        *(secret_env(ref) for ref in secret_refs(resource.spec)),
        *_rendezvous_env(resource),
        *(_env_var(v) for v in resource.spec.env),
        *(_env_var(v) for v in settings.worker_extra_env),
    ]
    first: dict[str, dict[str, Any]] = {}
    for var in env:
        first.setdefault(var["name"], var)
    return list(first.values())


def _rendezvous_env(resource: AnyResource) -> list[dict[str, Any]]:
    """torchrun's rendezvous for a multi-node SFTJob: node 0's stable DNS name through the headless
    Service named like the Job (hostname <job>-0, subdomain <job>)."""
    if not is_multi_node(resource):
        return []
    assert isinstance(resource, SFTJob)
    job = _job_name(resource)
    return [
        {"name": "MASTER_ADDR", "value": f"{job}-0.{job}"},
        {"name": "MASTER_PORT", "value": str(resource.spec.master_port)},
        {"name": "NNODES", "value": str(resource.spec.nodes)},
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
    ]


def is_multi_node(resource: AnyResource) -> bool:
    """A multi-node SFTJob: an Indexed Job of `nodes` pods plus a headless Service."""
    return isinstance(resource, SFTJob) and resource.spec.nodes > 1


def _job_name(resource: AnyResource) -> str:
    return child_name(resource.kind, resource.metadata.name)


def compute(resource: AnyResource) -> dict[str, Any]:
    """Requests = limits: CPU, memory and accelerators per pod."""
    res = resource.spec.resources
    amounts: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        amounts[res.gpu_resource_name] = str(res.gpus)
    amounts = {k: v for k, v in amounts.items() if v is not None}
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def merged_scheduling(spec: Scheduling, default: Scheduling) -> Scheduling:
    """The spec's placement with the operator's defaults merged under it."""
    tolerations = [*default.tolerations, *(t for t in spec.tolerations if t not in default.tolerations)]
    return Scheduling(
        node_selector={**default.node_selector, **spec.node_selector},
        tolerations=tolerations,
        affinity=spec.affinity if spec.affinity is not None else default.affinity,
        priority_class_name=spec.priority_class_name or default.priority_class_name,
        runtime_class_name=spec.runtime_class_name or default.runtime_class_name,
    )


def _placement(resource: AnyResource, settings: OperatorSettings) -> dict[str, Any]:
    default = settings.default_scheduling
    if settings.runtime_class_name and runs_untrusted_code(resource):
        default = default.model_copy(update={"runtime_class_name": settings.runtime_class_name})
    chosen = merged_scheduling(resource.spec.scheduling, default)
    placement: dict[str, Any] = {
        "nodeSelector": chosen.node_selector or None,
        "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in chosen.tolerations] or None,
        "affinity": chosen.affinity,
        "priorityClassName": chosen.priority_class_name,
        "runtimeClassName": chosen.runtime_class_name,
    }
    pulls = [*settings.image_pull_secrets, *(s.name for s in resource.spec.image_pull_secrets)]
    placement["imagePullSecrets"] = [{"name": n} for n in dict.fromkeys(pulls)] or None
    return {k: v for k, v in placement.items() if v}  # an empty value means "not set" to Kubernetes too


def pod_template(
    resource: AnyResource,
    settings: OperatorSettings,
    command: list[str],
    env: list[dict[str, Any]],
    volumes: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """The Job's pod template; `volumes` is (pod volumes, container mounts)."""
    container = {
        "name": CONTAINER,
        "image": resource.spec.image or settings.worker_image,
        "command": command,
        "env": env,
        "resources": compute(resource),
        "volumeMounts": volumes[1],
        "ports": [{"name": "progress", "containerPort": PROGRESS_PORT, "protocol": "TCP"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": resource.spec.service_account_name or settings.worker_service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes[0],
        **_placement(resource, settings),
    }
    if is_multi_node(resource):
        spec["subdomain"] = _job_name(resource)
    meta = {"labels": {**labels(resource), **security_labels(resource)}, "annotations": dict(annotations)}
    return {"metadata": meta, "spec": spec}


def job(
    resource: AnyResource,
    settings: OperatorSettings,
    template: dict[str, Any],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """The batch/v1 Job: Indexed with completions = parallelism = spec.shards (or nodes) for sharded grading,
    distillation and multi-node SFT; created suspended under a Kueue queue (Kueue admits it) or when
    the resource is suspended. Finished Jobs expire after the settings' ttlSecondsAfterFinished (status
    keeps their outcome).

    A multi-node SFTJob is a gang: a pod recreated alone would wait forever in torchrun's static
    rendezvous while the others hang in a collective. So its Job has backoffLimit 0 (any failed pod,
    disruptions included, fails the Job and the Job controller stops the other pods) and the operator
    restarts the whole Job, within spec.backoffLimit gang restarts, resuming from the last checkpoint
    (adacot_operator.status, reconcile)."""
    meta = child_metadata(resource, _job_name(resource), annotations)
    queue = resource.spec.queue_name or settings.default_queue
    if queue:
        meta["labels"][QUEUE_LABEL] = queue
    gang = is_multi_node(resource)
    rejected = {"containerName": CONTAINER, "operator": "In", "values": list(INPUT_ERROR_EXIT_CODES)}
    rules: list[dict[str, Any]] = [{"action": "FailJob", "onExitCodes": rejected}]
    if not gang:  # a gang's disrupted pod must not come back alone (see above)
        disrupted = [{"type": "DisruptionTarget", "status": "True"}]
        rules.append({"action": "Ignore", "onPodConditions": disrupted})
    spec: dict[str, Any] = {
        "backoffLimit": 0 if gang else resource.spec.backoff_limit,
        "podFailurePolicy": {"rules": rules},
        "suspend": bool(queue) or resource.spec.suspend,
        "template": template,
    }
    width = _indexed_width(resource)
    if width is not None:
        spec.update(completionMode="Indexed", completions=width, parallelism=width)
    if resource.spec.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = resource.spec.active_deadline_seconds
    if settings.job_ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = settings.job_ttl_seconds_after_finished
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def _indexed_width(resource: AnyResource) -> int | None:
    """Shards (grading, distillation) or nodes (multi-node SFT); None for a single plain pod."""
    if isinstance(resource, SFTJob):
        return resource.spec.nodes if resource.spec.nodes > 1 else None
    return getattr(resource.spec, "shards", None)
