"""How a stage's pods run: the fields every kind shares (lifecycle, placement, resources, image, env,
output volume). The operator turns them into Job and PVC fields; `adacot run` ignores most of them.
"""

from __future__ import annotations

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
    backoff_limit: int = Field(default=3, ge=0, le=100, description="Pod retries before the Job fails.")
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

    @model_validator(mode="after")
    def _secret_variables_distinct(self) -> CommonSpec:
        check_secret_variables(secret_refs(self))
        return self


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
