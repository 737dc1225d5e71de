"""The operator's settings: chart-level defaults for the children it builds, read from the environment.

Callers: adacot_operator's startup (`OperatorSettings.from_env()` once) and the manifest builders (which
merge these defaults *under* each resource's own values). The Helm chart sets the variables. A bad value
stops the operator at startup with a message naming the variable, never silently at the first
reconcile. Limits: read once; changing a variable needs a restart (a Deployment rollout does it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from adacot import __version__
from adacot.api.loader import format_path
from adacot.api.workload import EnvVar, Scheduling

DEFAULT_WORKER_IMAGE = f"ghcr.io/adacot/worker:{__version__}"

ENV_NAMES: dict[str, str] = {
    "worker_image": "ADACOT_WORKER_IMAGE",
    "worker_service_account": "ADACOT_WORKER_SERVICE_ACCOUNT",
    "storage_class": "ADACOT_STORAGE_CLASS",
    "storage_size": "ADACOT_STORAGE_SIZE",
    "default_queue": "ADACOT_DEFAULT_QUEUE",
    "default_scheduling": "ADACOT_DEFAULT_SCHEDULING",
    "image_pull_secrets": "ADACOT_IMAGE_PULL_SECRETS",
    "worker_extra_env": "ADACOT_WORKER_EXTRA_ENV",
    "metrics_port": "ADACOT_METRICS_PORT",
    "prefix": "ADACOT_PREFIX",
    "watch_timeout_s": "ADACOT_WATCH_TIMEOUT_S",
    "claim_mount_root": "ADACOT_CLAIM_MOUNT_ROOT",
    "runtime_class_name": "ADACOT_RUNTIME_CLASS_NAME",
    "job_ttl_seconds_after_finished": "ADACOT_JOB_TTL_SECONDS_AFTER_FINISHED",
    "leader_election_namespace": "ADACOT_LEADER_ELECTION_NAMESPACE",
    "leader_lease_seconds": "ADACOT_LEADER_LEASE_SECONDS",
    "pod_policy": "ADACOT_POD_POLICY",
}
"""Field -> environment variable."""
JSON_FIELDS = ("default_scheduling", "worker_extra_env", "pod_policy")
#: Fields a variable set empty makes None (unset, or empty for the rest, keeps the default).
_EMPTY_IS_NONE = (
    "storage_class",
    "default_queue",
    "runtime_class_name",
    "job_ttl_seconds_after_finished",
    "leader_election_namespace",
)


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use; the message names it."""


class PodPolicy(BaseModel):
    """What a resource's spec may ask of its pods beyond the restricted Pod Security profile (chart
    values `podPolicy`, variable ADACOT_POD_POLICY as JSON with these camelCase keys). Everything
    defaults to refused: whoever may create adacot resources must not gain through the operator what
    they could not do with pods of their own (adacot_operator.policy, docs/security.md)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, alias_generator=to_camel,
        populate_by_name=True,
    )  # fmt: skip

    allow_privileged: bool = False
    """Privileged containers, allowPrivilegeEscalation, unconfined seccomp/AppArmor, unmasked /proc,
    unsafe sysctls, custom SELinux types: what the baseline Pod Security profile forbids."""
    allow_host_namespaces: bool = False
    """podTemplate.spec hostNetwork, hostPID and hostIPC."""
    allow_host_path: bool = False
    """hostPath volumes."""
    allow_run_as_root: bool = False
    """runAsUser 0 or runAsNonRoot false (pod or container)."""
    allowed_capabilities: list[str] = Field(default_factory=list)
    """Capabilities a container may add (e.g. IPC_LOCK, SYS_NICE); "*" allows any."""
    allowed_service_accounts: list[str] = Field(default_factory=list)
    """ServiceAccounts (glob patterns) a spec may name besides the operator's worker account."""
    allowed_images: list[str] = Field(default_factory=list)
    """Images (glob patterns over the whole reference, `*` crossing `/`) spec.image may name; empty:
    the worker image's repository directory (ghcr.io/adacot/* for the default image). The worker
    image itself is always allowed; ["*"] allows any."""
    allow_service_account_token: bool = False
    """A projected volume with a serviceAccountToken source: a token of the pod's ServiceAccount, which
    stage pods otherwise never hold (no automount), usable wherever its audience is trusted."""
    allowed_volume_types: list[str] = Field(default_factory=list)
    """Volume types allowed besides the restricted profile's (configMap, csi, downwardAPI, emptyDir,
    ephemeral, persistentVolumeClaim, projected, secret), e.g. nfs; hostPath has allowHostPath."""


class OperatorSettings(BaseModel):
    """Operator-wide defaults; every field has an environment variable (see ENV_NAMES)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    worker_image: str = Field(default=DEFAULT_WORKER_IMAGE, min_length=1)
    """Image of the stage pods when a resource sets no spec.image."""
    worker_service_account: str = Field(default="adacot-worker", min_length=1)
    """ServiceAccount of the stage pods unless the spec sets one (no token is mounted: the pods need no
    Kubernetes API access)."""
    storage_class: str | None = None
    """StorageClass of created output volumes when the spec names none (None: the cluster default)."""
    storage_size: str = Field(
        default="10Gi", pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
    )
    """Size of created output volumes when the spec gives none."""
    default_queue: str | None = None
    """Kueue LocalQueue for resources that name none (None: no Kueue)."""
    default_scheduling: Scheduling = Field(default_factory=Scheduling)
    """Placement merged under each spec's scheduling (spec values win)."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Pull secrets added to every stage pod (besides the spec's)."""
    worker_extra_env: list[EnvVar] = Field(default_factory=list)
    """Extra env on every stage container (a literal value or a secretKeyRef {name, key})."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus metrics port; 0 disables the endpoint."""
    prefix: str = Field(default="adacot.dev", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Prefix of the operator's annotations and finalizer."""
    watch_timeout_s: int = Field(default=300, ge=1)
    """Server-side timeout of each watch request (kopf reconnects after it)."""
    claim_mount_root: str = Field(default="/mnt/adacot", pattern=r"^/.*[^/]$|^/$")
    """Where claims are mounted in stage pods: output/, claims/<name>/, inputs/<kind>-<name>/."""
    runtime_class_name: str | None = None
    """RuntimeClass (gVisor, Kata) of the pods that run untrusted code when their spec names none;
    None: the cluster default. Recommended on multi-tenant clusters (docs/security.md)."""
    job_ttl_seconds_after_finished: int | None = Field(default=86400, ge=0)
    """ttlSecondsAfterFinished of child Jobs: finished Jobs (and their pods, logs) are deleted after it;
    None (empty variable): kept until the resource is deleted. Status does not need the Job once it has
    recorded the outcome (adacot_operator.status)."""
    leader_election_namespace: str | None = None
    """Namespace of the Lease `adacot-operator` the replicas elect their leader with (the chart: its
    own namespace); None: no election, this process acts alone (one replica, tests, `kopf run`)."""
    leader_lease_seconds: int = Field(default=15, ge=2, le=3600)
    """How long a leader's Lease holds without renewal; a follower takes over after it expires. The
    leader renews every third of it."""
    pod_policy: PodPolicy = Field(default_factory=PodPolicy)
    """What specs may ask of their pods beyond the restricted profile (PodPolicy); default: nothing."""

    @field_validator(*_EMPTY_IS_NONE, mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from `environ` (default os.environ); unset or empty variables keep the defaults.

        Raises SettingsError naming the variable (and the field inside a JSON value) on bad input.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field, var in ENV_NAMES.items():
            text = env.get(var, "")
            if text == "" and (var not in env or field not in _EMPTY_IS_NONE):
                continue
            raw[field] = _parse_json(var, text) if field in JSON_FIELDS else text
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise SettingsError("; ".join(_describe(e) for e in error.errors())) from None


def _parse_json(var: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError(f"{var}: not valid JSON ({error.msg} at character {error.pos})") from None


def _describe(error: Mapping[str, Any]) -> str:
    """`VAR[.field...]: message` for one pydantic error."""
    location = tuple(error["loc"]) or ("settings",)
    var = ENV_NAMES.get(str(location[0]), str(location[0]))
    return f"{format_path((var, *location[1:]))}: {error['msg']}"
