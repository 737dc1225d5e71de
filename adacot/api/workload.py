"""How a stage's pods run: the fields every kind shares (lifecycle, placement, resources, image, env,
output volume). The operator turns them into Job and PVC fields; `adacot run` ignores most of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adacot.api.common import DNS1123_LABEL, ApiModel, LocalObjectReference, SecretRef
from adacot.api.quantity import QUANTITY
from adacot.api.rules import cel, check_one_of, immutable, one_of_rule, validations

Shards = Annotated[
    int,
    Field(
        ge=1,
        le=1024,
        description="Pods of the Indexed Job, each taking the questions whose id hashes to it; was "
        "`parallelism` before issue 16.",
    ),
]
"""The `shards` field of the kinds that split their questions over pods (GradingRun, DistillationJob)."""


class Toleration(ApiModel):
    """A Kubernetes toleration (same fields as core/v1 Toleration)."""

    key: str | None = Field(default=None, description="Taint key; empty with operator Exists matches all.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty means all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated before eviction."
    )


class Scheduling(ApiModel):
    """Where the stage's pods run. Editable only while the resource is suspended (Kueue changes it then)."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods require.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    affinity: dict[str, Any] | None = Field(
        default=None, description="A core/v1 Affinity object, passed through to the pod spec unchanged."
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    runtime_class_name: str | None = Field(
        default=None, description="RuntimeClass of the pods (e.g. nvidia)."
    )


class Resources(ApiModel):
    """Compute per pod (per node for multi-node SFT). CPU and memory are requests and limits both."""

    gpus: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Accelerators per pod; 0 when resources are given without it (a stage that "
        "needs GPUs defaults to 1 only when resources is absent).",
    )
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu", min_length=1, description="Extended resource name of the accelerator."
    )
    cpu: str | None = Field(default=None, pattern=QUANTITY, description="CPU quantity, e.g. 8 or 500m.")
    memory: str | None = Field(default=None, pattern=QUANTITY, description="Memory quantity, e.g. 64Gi.")
    shared_memory: str = Field(
        default="16Gi",
        pattern=QUANTITY,
        description="Size of the in-memory /dev/shm volume (vLLM and NCCL need more than the default).",
    )


class EnvVar(ApiModel):
    """An extra environment variable for the stage's container: a literal or a Secret key."""

    model_config = ConfigDict(json_schema_extra=validations(one_of_rule(("value", "secretKeyRef"), "env")))

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    secret_key_ref: SecretRef | None = Field(default=None, description="Take the value from a Secret.")

    @model_validator(mode="after")
    def _one_value(self) -> EnvVar:
        check_one_of(self, ("value", "secretKeyRef"), f"env {self.name}")
        return self


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


class VolumeClaimSpec(ApiModel):
    """The PersistentVolumeClaim the operator creates for a stage's output."""

    size: str | None = Field(
        default=None,
        pattern=QUANTITY,
        description="Requested storage, e.g. 100Gi; unset: the operator's default (chart "
        "defaults.storage.size, 10Gi).",
    )
    storage_class_name: str | None = Field(
        default=None, description="StorageClass; empty means the cluster default."
    )
    access_modes: list[AccessMode] = Field(
        default=["ReadWriteOnce"],
        min_length=1,
        description="Access modes; sharded stages on several nodes need ReadWriteMany.",
    )


class OutputSpec(ApiModel):
    """Where a stage writes its artifact: a volume to create, or an existing claim."""

    model_config = ConfigDict(
        json_schema_extra=validations(one_of_rule(("create", "existingClaim"), "output"))
    )

    create: VolumeClaimSpec | None = Field(default=None, description="Create a PVC owned by this resource.")
    existing_claim: str | None = Field(
        default=None, pattern=DNS1123_LABEL, description="Write into this existing PVC instead."
    )
    sub_path: str | None = Field(
        default=None,
        pattern=r"^[^/].*$",
        description="Directory inside the volume; defaults to <namespace>/<kind>/<name>.",
    )
    retention: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="What happens to a created volume when the resource is deleted (Delete: owned by the "
        "resource and garbage-collected with it; fixed when the volume is created).",
    )

    @model_validator(mode="after")
    def _one_target(self) -> OutputSpec:
        check_one_of(self, ("create", "existingClaim"), "output")
        return self


class PodTemplateMetadata(ApiModel):
    """Labels and annotations added to the stage's pods."""

    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra pod labels. The operator's own (adacot.dev/*, app.kubernetes.io/managed-by) "
        "cannot be set here: the spec is refused naming the label.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Extra pod annotations; keys under the operator's prefix (adacot.dev/) are refused.",
    )


class VolumeMount(ApiModel):
    """A core/v1 VolumeMount of the stage container, for a volume of podTemplate.spec.volumes."""

    name: str = Field(min_length=1, description="Name of a volume in spec.podTemplate.spec.volumes.")
    mount_path: str = Field(
        pattern=r"^/",
        description="Absolute path in the container; the operator's own mount paths (the spec file, "
        "/dev/shm, /tmp, HOME, anything under the claim mount root /mnt/adacot) are refused.",
    )
    read_only: bool = Field(default=False, description="Mount read-only.")
    sub_path: str | None = Field(
        default=None, pattern=r"^[^/]", description="Path inside the volume to mount instead of its root."
    )


class PodTemplateSpec(ApiModel):
    """Pod-spec fields merged onto the pod the operator builds (operator-owned fields win: see
    docs/security.md). Host namespaces, hostPath volumes, privileged or root containers, added
    capabilities and other ServiceAccounts are refused unless the operator's podPolicy allows them."""

    volumes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="core/v1 Volume objects added to the pod (configMap, secret, persistentVolumeClaim, "
        "emptyDir, csi, projected, downwardAPI, ephemeral; hostPath and other types only where the "
        "operator's podPolicy allows them). A name the operator uses is refused.",
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list, description="Mounts of these volumes in the stage container."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment variables of the stage container, like spec.env (a name in both "
        "must have the same value); adacot's own variables (ADACOT_*, HOME, the rendezvous) are refused.",
    )
    security_context: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 PodSecurityContext merged over the operator's restricted one: runAsUser, "
        "runAsGroup, fsGroup, supplementalGroups, fsGroupChangePolicy, seLinuxOptions, sysctls. "
        "runAsNonRoot and seccompProfile stay the operator's; root needs podPolicy.allowRunAsRoot.",
    )
    container_security_context: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 SecurityContext for the stage container, merged over the operator's: "
        "allowPrivilegeEscalation false and capabilities.drop [ALL] stay; privileged, added "
        "capabilities and root need the operator's podPolicy.",
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the image (added to spec.imagePullSecrets)."
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount of the pods (same as spec.serviceAccountName); one other than the "
        "operator's worker account needs podPolicy.allowedServiceAccounts.",
    )
    scheduler_name: str | None = Field(default=None, description="Scheduler of the pods (e.g. volcano).")
    priority_class_name: str | None = Field(
        default=None, description="PriorityClass of the pods (same as spec.scheduling.priorityClassName)."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the pods tolerate (added to spec.scheduling's)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the pods require (merged with spec.scheduling.nodeSelector; a key in "
        "both must have the same value).",
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 Affinity object (same as spec.scheduling.affinity; set one of the two).",
    )
    host_network: bool = Field(
        default=False, description="Use the node's network namespace; needs podPolicy.allowHostNamespaces."
    )
    host_pid: bool = Field(
        default=False,
        alias="hostPID",
        description="Use the node's PID namespace; needs podPolicy.allowHostNamespaces.",
    )
    host_ipc: bool = Field(
        default=False,
        alias="hostIPC",
        description="Use the node's IPC namespace; needs podPolicy.allowHostNamespaces.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PodTemplateSpec:
        names: list[str] = []
        for i, volume in enumerate(self.volumes):
            name = volume.get("name")
            if not isinstance(name, str) or not re.fullmatch(DNS1123_LABEL, name) or len(name) > 63:
                raise ValueError(f"volumes[{i}].name: a volume needs a name that is a DNS-1123 label")
            if name in names:
                raise ValueError(f"volumes[{i}].name: volume {name} is defined twice")
            names.append(name)
        paths: set[str] = set()
        for i, mount in enumerate(self.volume_mounts):
            if mount.name not in names:
                raise ValueError(f"volumeMounts[{i}].name: {mount.name} is not a volume of podTemplate.spec")
            if mount.mount_path in paths:
                raise ValueError(f"volumeMounts[{i}].mountPath: {mount.mount_path} is mounted twice")
            paths.add(mount.mount_path)
        return self


class PodTemplate(ApiModel):
    """Overrides of the stage's pods: a subset of a core/v1 PodTemplateSpec, merged onto what the
    operator builds (operator-owned fields win; a conflict is refused with a message naming the field)."""

    metadata: PodTemplateMetadata = Field(
        default_factory=PodTemplateMetadata, description="Labels and annotations of the pods."
    )
    spec: PodTemplateSpec = Field(
        default_factory=PodTemplateSpec, description="Pod-spec fields merged onto the stage's pod."
    )


def _default_output() -> OutputSpec:
    return OutputSpec(create=VolumeClaimSpec())


SCHEDULING_WHILE_SUSPENDED = cel(
    "(has(oldSelf.suspend) && oldSelf.suspend) || (has(self.suspend) && self.suspend) || "
    "(has(self.scheduling) == has(oldSelf.scheduling) && (!has(self.scheduling) || "
    "self.scheduling == oldSelf.scheduling))",
    "scheduling can only be changed while spec.suspend is true",
)


class CommonSpec(ApiModel):
    """Fields every kind shares: lifecycle, placement, image and output volume."""

    model_config = ConfigDict(json_schema_extra=validations(SCHEDULING_WHILE_SUSPENDED))

    suspend: bool = Field(
        default=False,
        description="Stop the stage's Jobs and keep its artifacts; set "
        "back to false to resume from the shards already written.",
    )
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node placement of the pods.")
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue; set as the kueue.x-k8s.io/queue-name label on the child Jobs, "
        "which are created suspended; was `queue` before issue 16.",
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(gpus=1),
        description="Compute per pod; absent: 1 GPU and no CPU or memory requests.",
    )
    image: str | None = Field(default=None, description="Worker image; defaults to the operator's setting.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the image."
    )
    service_account_name: str | None = Field(default=None, description="ServiceAccount of the pods.")
    backoff_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Pod retries before the Job fails; for a multi-node SFTJob, gang restarts (every node "
        "restarted together from the last checkpoint after one fails).",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Wall-clock limit of the stage's Job; exceeding it fails with DeadlineExceeded.",
    )
    output: OutputSpec = Field(
        default_factory=_default_output,
        description="Where the artifact is written.",
        json_schema_extra=immutable("output"),
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    pod_template: PodTemplate | None = Field(
        default=None,
        description="Overrides of the stage's pods (labels, annotations, volumes, env, securityContext, "
        "serviceAccountName, schedulerName, placement), merged onto what the operator builds; "
        "spec.image, imagePullSecrets, serviceAccountName, env and scheduling are shorthands for the "
        "same fields: a value in both places must agree.",
    )

    @model_validator(mode="after")
    def _secret_variables_distinct(self) -> CommonSpec:
        check_secret_variables(secret_refs(self))
        return self

    @model_validator(mode="after")
    def _pod_template_agrees(self) -> CommonSpec:
        if self.pod_template is not None:
            check_shorthands(self, self.pod_template.spec)
        return self


def check_shorthands(spec: CommonSpec, over: PodTemplateSpec) -> None:
    """A field set both as a spec shorthand and in spec.podTemplate.spec must have one value."""
    pairs: list[tuple[str, Any, Any]] = [
        ("serviceAccountName", spec.service_account_name, over.service_account_name),
        ("scheduling.priorityClassName", spec.scheduling.priority_class_name, over.priority_class_name),
        ("scheduling.affinity", spec.scheduling.affinity, over.affinity),
    ]
    pairs += [
        (f"scheduling.nodeSelector[{key}]", spec.scheduling.node_selector.get(key), value)
        for key, value in over.node_selector.items()
    ]
    env = {var.name: var for var in spec.env}
    pairs += [(f"env[{var.name}]", env.get(var.name), var) for var in over.env]
    for field, short, full in pairs:
        if short is not None and full is not None and short != full:
            target = field.removeprefix("scheduling.")
            raise ValueError(
                f"spec.{field} and spec.podTemplate.spec.{target} set different values; set it in one place"
            )


def secret_refs(model: BaseModel) -> Iterator[SecretRef]:
    """Every SecretRef in a spec (model tokens, endpoint API keys), spec.env entries excepted (those
    name their own variable)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, SecretRef):
                yield child
            elif isinstance(child, BaseModel) and not isinstance(child, EnvVar):
                yield from secret_refs(child)


def check_secret_variables(refs: Iterable[SecretRef]) -> None:
    """Two different Secret keys must not land in one variable (SecretRef.env_var maps every
    non-alphanumeric character to "_", so a-b/c and a/b-c would): the pod would get one of them twice."""
    seen: dict[str, tuple[str, str]] = {}
    for ref in refs:
        first = seen.setdefault(ref.env_var, (ref.name, ref.key))
        if first != (ref.name, ref.key):
            raise ValueError(
                f"secrets {first[0]}/{first[1]} and {ref.name}/{ref.key} would share the environment "
                f"variable {ref.env_var}; rename one Secret or key"
            )
