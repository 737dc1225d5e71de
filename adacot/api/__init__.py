"""The one typed contract of adacot's four resources (GradingRun, DifficultyBank, DistillationJob,
SFTJob). The CRDs, the CLI's YAML and the pods' config are all generated from or parsed by these
models. This package imports no torch, vllm, kopf or kubernetes (checked by import-linter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

from pydantic import BaseModel

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.resource import API_VERSION, GROUP, VERSION, ObjectMeta, Resource
from adacot.api.rules import IMMUTABLE
from adacot.api.sft_job import SFTJob
from adacot.api.workload import SCHEDULING_WHILE_SUSPENDED, CommonSpec

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCE_KINDS",
    "VERSION",
    "AnyResource",
    "DifficultyBank",
    "DistillationJob",
    "GradingRun",
    "ObjectMeta",
    "Resource",
    "SFTJob",
    "check_update",
    "dependency_graph",
    "references",
]

AnyResource: TypeAlias = GradingRun | DifficultyBank | DistillationJob | SFTJob
"""Any of the four resource kinds."""

# In pipeline order: the order CRDs are generated in and stages are listed in.
RESOURCE_KINDS: dict[str, type[Resource[Any, Any]]] = {
    cls.KIND: cls for cls in (GradingRun, DifficultyBank, DistillationJob, SFTJob)
}

Key: TypeAlias = tuple[str, str]


def references(resource: Resource[Any, Any]) -> list[Key]:
    """(kind, name) of every resource this one consumes, in the same namespace.

    A GradingRun's bankRef is not among them: the run feeds the bank, so the edge points the other way
    (see `dependency_graph`).
    """
    return resource.references()


def dependency_graph(resources: Iterable[Resource[Any, Any]]) -> dict[Key, list[Key]]:
    """Inputs of every resource, including the banks fed by GradingRuns through their bankRef (a
    bank's `levels.cutPointsFrom` run is one of its references, so it waits for that run too).

    The local runner orders stages by this graph and the operator makes a bank wait for the same runs.
    Referenced resources missing from `resources` still appear as inputs: the caller decides whether
    that is an error (a file) or something to wait for (a cluster).
    """
    items = list(resources)
    graph: dict[Key, list[Key]] = {r.key: list(references(r)) for r in items}
    for r in items:
        if isinstance(r, GradingRun) and r.spec.bank_ref is not None:
            bank = ("DifficultyBank", r.spec.bank_ref.name)
            if bank in graph and r.key not in graph[bank]:
                graph[bank].append(r.key)
    return graph


def check_update(old: Resource[Any, Any], new: Resource[Any, Any]) -> list[str]:
    """The CRDs' transition rules in Python (the operator and `adacot run` use it; the CLI has no old
    object). Returns one message per violated rule, each prefixed with its field path; [] when the
    update is allowed."""
    if old.key != new.key:
        return [f"kind and metadata.name cannot change ({old.key} -> {new.key})"]
    problems = _immutable_changes(old.spec, new.spec, "spec")
    if isinstance(old.spec, CommonSpec) and isinstance(new.spec, CommonSpec):
        suspended = old.spec.suspend or new.spec.suspend
        if not suspended and old.spec.scheduling != new.spec.scheduling:
            problems.append(f"spec: {SCHEDULING_WHILE_SUSPENDED['message']}")
    return problems


def _immutable_changes(old: BaseModel, new: BaseModel, path: str) -> list[str]:
    """Walk two models field by field, applying every `self == oldSelf` rule found on a field.

    Like CEL transition rules on optional fields, a rule applies only when both values are present.
    """
    problems: list[str] = []
    for name, info in type(old).model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if before is None or after is None:
            continue
        where = f"{path}.{info.alias or name}"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        rules = extra.get("x-kubernetes-validations")
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and rule.get("rule") == IMMUTABLE and _dump(before) != _dump(after):
                problems.append(f"{where}: {rule['message']}")
        if isinstance(before, BaseModel) and type(before) is type(after):
            problems.extend(_immutable_changes(before, after, where))
    return problems


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
