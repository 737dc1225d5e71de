"""Planning for the local runner (`adacot run FILE.yaml`): the same multi-document YAML `kubectl apply`
takes, validated whole and put in dependency order before anything runs.

Callers: adacot.cli.run and tests. Steps:

1. `plan`: load every document (adacot.api.loader), validate ALL of it before anything runs, and order
   the stages. Cross-object checks, each error naming the file, document, resource and field: every
   reference names a resource in the file (same namespace); a bank has at least one input; every path
   in a spec exists (models must be directories with a config.json); every claimName is mapped. A
   bank's levels.cutPointsFrom is a reference like the others: that GradingRun runs before the bank.
   Stages are ordered topologically by `adacot.api.dependency_graph`; ties keep document order, so
   the order is deterministic. Several namespaces are planned one after the other.
2. `execute`: for each stage, skip it when its artifact is complete (MANIFEST.json + _SUCCESS) unless
   forced; skip it when an input failed; else run the kind's pipeline with inputs resolved to the
   producers' artifact directories. A failure is recorded with the exception's message and the run
   goes on with the stages that do not depend on it. Interrupted stages resume by themselves (the
   pipelines keep their shards and logs).

Paths. Relative paths in specs (models, datasets, responses, bank sources, benchmark files) resolve
against the directory of the YAML file, not the working directory, so a file and its data can move
together. A path under a PersistentVolumeClaim (`claimName` set) resolves against the local directory
given with `--claim NAME=DIR`; a claim without a mapping is a planning error. Artifacts go to
`<workdir>/<namespace>/<kind>/<name>/`; `output` blocks (PVCs) are ignored on one machine.

Limits: stages run one at a time in this process (sharded kinds run as a single shard); hub ids are not
checked for reachability before the run (their stage fails with a clear message instead); teacher
endpoints are probed by the distillation stage itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adacot.api import AnyResource, dependency_graph
from adacot.api.defaults import with_default_model
from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.loader import load_resources
from adacot.api.paths import missing_paths, resolve_paths
from adacot.artifacts.store import is_complete

Key = tuple[str, str, str]
"""(namespace, kind, name) of a stage."""


class PlanError(ValueError):
    """The file cannot be run; one problem per line, each naming document, resource and field."""


@dataclass(frozen=True)
class Stage:
    """One resource to run, its spec with paths resolved, its inputs and its artifact directory."""

    resource: AnyResource
    inputs: tuple[Key, ...]
    out_dir: Path

    @property
    def key(self) -> Key:
        return (self.resource.metadata.namespace, self.resource.kind, self.resource.metadata.name)

    @property
    def label(self) -> str:
        return f"{self.resource.kind}/{self.resource.metadata.name}"


# ----------------------------------------------------------------------------------------------- plan


def topological_order(graph: Mapping[Any, Sequence[Any]], order: Sequence[Any]) -> list[Any]:
    """Nodes of `graph` (node -> its inputs) so that inputs come first; among ready nodes the earliest
    in `order` goes first. A cycle raises PlanError naming its members."""
    position = {node: i for i, node in enumerate(order)}
    done: list[Any] = []
    left = [n for n in order if n in graph]
    while left:
        ready = [n for n in left if all(i in done or i not in graph for i in graph[n])]
        if not ready:
            raise PlanError("dependency cycle between " + ", ".join(_name(n) for n in left))
        first = min(ready, key=position.__getitem__)
        done.append(first)
        left.remove(first)
    return done


def _name(node: Any) -> str:
    return "/".join(node[-2:]) if isinstance(node, tuple) else str(node)


def document_numbers(path: Path) -> dict[Key, int]:
    """1-based document number of each resource (counting empty documents, as the loader does)."""
    numbers: dict[Key, int] = {}
    for index, data in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8")), start=1):
        if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
            meta = data["metadata"]
            numbers[(meta.get("namespace", "default"), str(data.get("kind")), str(meta.get("name")))] = index
    return numbers


def reference_fields(resource: AnyResource) -> list[tuple[str, str, str]]:
    """(field, kind, name) of every reference in a resource, the bankRef of a GradingRun included."""
    if isinstance(resource, GradingRun):
        ref = resource.spec.bank_ref
        return [("spec.bankRef.name", "DifficultyBank", ref.name)] if ref else []
    if isinstance(resource, DifficultyBank):
        levels = resource.spec.levels
        sources = [
            (f"spec.sources[{i}].gradingRunRef.name", "GradingRun", s.grading_run_ref.name)
            for i, s in enumerate(resource.spec.sources)
            if s.grading_run_ref is not None
        ]
        if levels is None:
            return sources
        return [*sources, ("spec.levels.cutPointsFrom.name", "GradingRun", levels.cut_points_from.name)]
    if isinstance(resource, DistillationJob):
        found = [("spec.bankRef.name", "DifficultyBank", resource.spec.bank_ref.name)]
        peval = resource.spec.distribution.from_grading_run
        return found + (
            [("spec.distribution.fromGradingRun.name", "GradingRun", peval.name)] if peval else []
        )
    ref = resource.spec.dataset.distillation_job_ref
    return [("spec.dataset.distillationJobRef.name", "DistillationJob", ref.name)] if ref else []


def plan(
    path: str | Path,
    workdir: str | Path,
    *,
    claims: Mapping[str, str | Path] | None = None,
    only: str | None = None,
) -> list[Stage]:
    """Load, validate and order the stages of a YAML file (see the module docstring)."""
    source = Path(path)
    resources = load_resources(source)  # raises ResourceError (a ValueError) naming document and field
    if not resources:
        raise PlanError(f"{source}: no resources to run")
    numbers = document_numbers(source)
    mapped = {name: Path(d).resolve() for name, d in (claims or {}).items()}
    problems: list[str] = []
    resolved: list[AnyResource] = []
    for resource in resources:
        where = _where(source, numbers, resource)
        fixed = resource.model_copy(
            update={
                "spec": resolve_paths(
                    resource.spec, source.resolve().parent, mapped, f"{where}: spec", problems
                )
            }
        )
        problems += missing_paths(fixed.spec, f"{where}: spec")
        problems += _reference_problems(fixed, resources, where)
        resolved.append(fixed)
    if problems:
        raise PlanError("\n".join(problems))
    stages = _order(resolved, Path(workdir))
    return _select(stages, only) if only is not None else stages


def _where(source: Path, numbers: Mapping[Key, int], resource: AnyResource) -> str:
    key = (resource.metadata.namespace, resource.kind, resource.metadata.name)
    return f"{source}, document {numbers.get(key, '?')} ({resource.kind}/{resource.metadata.name})"


def _reference_problems(resource: AnyResource, everything: Sequence[AnyResource], where: str) -> list[str]:
    namespace = resource.metadata.namespace
    present = {(r.kind, r.metadata.name) for r in everything if r.metadata.namespace == namespace}
    problems = [
        f"{where}: {field_}: no {kind} named {name!r} in namespace {namespace!r} of this file"
        for field_, kind, name in reference_fields(resource)
        if (kind, name) not in present
    ]
    if isinstance(resource, DifficultyBank) and not resource.spec.sources:
        feeders = [r for r in everything if isinstance(r, GradingRun) and r.metadata.namespace == namespace]
        if not any(r.spec.bank_ref and r.spec.bank_ref.name == resource.metadata.name for r in feeders):
            problems.append(
                f"{where}: spec.sources: the bank has no input (no source, no GradingRun bankRef)"
            )
    return problems


def _order(resources: Sequence[AnyResource], workdir: Path) -> list[Stage]:
    stages: list[Stage] = []
    namespaces = list(dict.fromkeys(r.metadata.namespace for r in resources))
    for namespace in namespaces:
        mine = [r for r in resources if r.metadata.namespace == namespace]
        graph = dependency_graph(mine)
        by_key = {r.key: r for r in mine}
        for key in topological_order(graph, [r.key for r in mine]):
            resource = by_key[key]
            inputs = tuple((namespace, kind, name) for kind, name in graph[key])
            out = workdir / namespace / resource.kind / resource.metadata.name
            stages.append(Stage(resource=with_default_model(resource, by_key), inputs=inputs, out_dir=out))
    return stages


def _select(stages: list[Stage], only: str) -> list[Stage]:
    """The one stage `only` names (NAME or Kind/NAME); its inputs must already be complete."""
    chosen = [s for s in stages if only in (s.resource.metadata.name, s.label)]
    if len(chosen) != 1:
        found = ", ".join(s.label for s in chosen) or "none"
        raise PlanError(f"--only {only}: expected one stage with that name or Kind/name, found {found}")
    by_key = {s.key: s for s in stages}
    missing = [by_key[k].label for k in chosen[0].inputs if not is_complete(by_key[k].out_dir)]
    if missing:
        raise PlanError(f"--only {only}: inputs not complete yet: {', '.join(missing)} (run them first)")
    return chosen
