"""Shared by the builder tests (one test file per builder module of adacot_operator.builders): the
sample resources and producer outputs, and `build`, which runs build_children and checks every object
against the Kubernetes 1.32 schemas (strict: unknown fields are errors) with kubernetes-validate
before a test looks at the fields the pod and the handlers rely on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from adacot_operator.builders.children import build_children
from adacot_operator.resolve import ResolvedInputs
from adacot_operator.settings import OperatorSettings
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.common import ModelSpec
from adacot.api.status import OutputStatus

K8S_VERSION = "1.32"
SETTINGS = OperatorSettings()
HASH = "adacot.dev/spec-hash"
INPUTS = ResolvedInputs(
    outputs={
        ("GradingRun", "qwen7b-pool"): OutputStatus(
            claim="qwen7b-pool-grade", path="ml/GradingRun/qwen7b-pool"
        ),
        ("GradingRun", "qwen7b-eval"): OutputStatus(
            claim="qwen7b-eval-grade", path="ml/GradingRun/qwen7b-eval"
        ),
        ("DifficultyBank", "qwen7b-bank"): OutputStatus(claim="shared", path="banks/qwen7b"),
        ("DistillationJob", "qwen7b-distil"): OutputStatus(claim="shared", path="cot/qwen7b"),
    },
    model=ModelSpec(path="Qwen2.5-7B-Instruct", claim_name="models"),
)


def resource(kind: str, name: str | None = None, **spec: Any) -> AnyResource:
    """A sample resource as read from the API server, with `spec` keys (wire names) overridden."""
    return RESOURCE_KINDS[kind].model_validate(sample(kind, name, **spec))  # type: ignore[return-value]


def build(
    res: AnyResource, settings: OperatorSettings = SETTINGS, inputs: ResolvedInputs = INPUTS
) -> dict[str, Any]:
    """The children by kind, each validated against the Kubernetes schemas first."""
    children = build_children(res, inputs, settings)
    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)
    kinds = [c["kind"] for c in children]
    assert len(kinds) == len(set(kinds))
    return {c["kind"]: c for c in children}


def container(job: dict[str, Any]) -> dict[str, Any]:
    [only] = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> mount, with the claim the mount's volume names."""
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    out = {}
    for m in container(job)["volumeMounts"]:
        claim = volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
        out[m["mountPath"]] = {**m, "claim": claim}
    return out
