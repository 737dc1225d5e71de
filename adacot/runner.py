"""The local runner behind `adacot run FILE.yaml`: the same multi-document YAML `kubectl apply` takes,
run on one machine, stage by stage, in-process.

Callers: adacot.cli.run and tests. Steps:

1. `plan`: load every document (adacot.api.loader), validate ALL of it before anything runs, and order
   the stages. Cross-object checks, each error naming the file, document, resource and field: every
   reference names a resource in the file (same namespace); a bank has at least one input; every path
   in a spec exists (models must be directories with a config.json); every claimName is mapped.
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

import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adacot.api import AnyResource, dependency_graph
from adacot.api.common import ModelSpec
from adacot.api.defaults import with_default_model
from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.loader import load_resources
from adacot.api.paths import missing_paths, resolve_paths
from adacot.api.sft_job import SFTJob
from adacot.artifacts.store import is_complete
from adacot.stages.progress import ProgressCallback

Key = tuple[str, str, str]
"""(namespace, kind, name) of a stage."""

DONE, SKIPPED_COMPLETE = "done", "skipped-complete"
EVALUATION_DIR = "evaluation"
FAILED, SKIPPED_DEPENDENCY = "failed", "skipped-dependency-failed"


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


@dataclass
class StageResult:
    stage: Stage
    status: str
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None


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
        return [
            (f"spec.sources[{i}].gradingRunRef.name", "GradingRun", s.grading_run_ref.name)
            for i, s in enumerate(resource.spec.sources)
            if s.grading_run_ref is not None
        ]
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
    missing = [by_key[k].label for k in chosen[0].inputs if not stage_complete(by_key[k])]
    if missing:
        raise PlanError(f"--only {only}: inputs not complete yet: {', '.join(missing)} (run them first)")
    return chosen


# ---------------------------------------------------------------------------------------------- execute

ProgressFactory = Callable[[Stage], ProgressCallback | None]
Notify = Callable[[Stage, int, int], None]


def execute(
    stages: Sequence[Stage],
    *,
    force: bool = False,
    progress: ProgressFactory | None = None,
    notify: Notify | None = None,
    all_stages: Iterable[Stage] = (),
) -> list[StageResult]:
    """Run the planned stages in order (see the module docstring); never raises for a stage failure.

    `all_stages` gives the out dirs of inputs that are not themselves planned (under --only).
    """
    directories = {s.key: s.out_dir for s in [*all_stages, *stages]}
    results: dict[Key, StageResult] = {}
    for number, stage in enumerate(stages, start=1):
        if notify is not None:
            notify(stage, number, len(stages))
        results[stage.key] = _run_one(stage, results, directories, force, progress)
    return [results[s.key] for s in stages]


def _run_one(
    stage: Stage,
    results: Mapping[Key, StageResult],
    directories: Mapping[Key, Path],
    force: bool,
    progress: ProgressFactory | None,
) -> StageResult:
    broken = [
        results[k].stage.label
        for k in stage.inputs
        if k in results and results[k].status in (FAILED, SKIPPED_DEPENDENCY)
    ]
    if broken:
        return StageResult(stage, SKIPPED_DEPENDENCY, reason=f"input {', '.join(broken)} did not complete")
    if stage_complete(stage) and not force:
        return StageResult(stage, SKIPPED_COMPLETE, summary=_read_summary(stage))
    if force and stage.out_dir.exists():
        shutil.rmtree(stage.out_dir)  # --force means from scratch: no resume from old shards
    started = time.monotonic()
    try:
        callback = progress(stage) if progress is not None else None
        summary = run_stage(stage, directories, callback)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        return StageResult(stage, FAILED, reason=reason, seconds=time.monotonic() - started)
    return StageResult(stage, DONE, summary=summary, seconds=time.monotonic() - started)


def _read_summary(stage: Stage) -> dict[str, Any]:
    """The summary.json of a complete stage (with its evaluation's, for an SFTJob that evaluates)."""
    summary = _json(stage.out_dir / "summary.json")
    evaluation = _json(stage.out_dir / EVALUATION_DIR / "summary.json")
    return {**summary, "evaluation": evaluation} if evaluation else summary


def _json(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}


def run_stage(
    stage: Stage, directories: Mapping[Key, Path], progress: ProgressCallback | None
) -> dict[str, Any]:
    """Call the pipeline of the stage's kind with its inputs' artifact directories."""
    resource, inputs = stage.resource, {k[1:]: directories[k] for k in stage.inputs}
    if isinstance(resource, GradingRun):
        from adacot.pipelines.gradingrun import run_gradingrun

        return run_gradingrun(resource, stage.out_dir, progress=progress)
    if isinstance(resource, DifficultyBank):
        from adacot.pipelines.difficultybank import run_difficultybank

        runs = {name: path for (kind, name), path in inputs.items() if kind == "GradingRun"}
        return run_difficultybank(resource, stage.out_dir, runs=runs)
    if isinstance(resource, DistillationJob):
        from adacot.pipelines.distillationjob import run_distillationjob

        bank = inputs[("DifficultyBank", resource.spec.bank_ref.name)]
        peval = resource.spec.distribution.from_grading_run
        eval_dir = inputs[("GradingRun", peval.name)] if peval else None
        return run_distillationjob(
            resource, stage.out_dir, bank_dir=bank, eval_dir=eval_dir, progress=progress
        )
    return _run_sft(resource, stage, inputs)


def _run_sft(resource: SFTJob, stage: Stage, inputs: Mapping[tuple[str, str], Path]) -> dict[str, Any]:
    """Train, then evaluate when the spec asks for it: the trained model (and the base model with
    compareBase) on the benchmarks, into <out>/evaluation (the before/after comparison)."""
    from adacot.pipelines.evaluate import run_evaluation
    from adacot.pipelines.sftjob import run_sftjob
    from adacot.stages.train import MODEL_DIR

    ref = resource.spec.dataset.distillation_job_ref
    dataset = inputs[("DistillationJob", ref.name)] if ref else None
    summary: dict[str, Any] = run_sftjob(resource, stage.out_dir, dataset_dir=dataset)
    evaluation, base = resource.spec.evaluation, resource.spec.model
    if evaluation is None:
        return summary
    trained = ModelSpec(path=str(stage.out_dir / MODEL_DIR))
    compared = base if evaluation.compare_base else None
    result = run_evaluation(evaluation, stage.out_dir / EVALUATION_DIR, model=trained, base_model=compared)
    return {**summary, "evaluation": result}


def stage_complete(stage: Stage) -> bool:
    """The artifact is complete (MANIFEST.json + _SUCCESS) and, for an SFTJob that evaluates, so is its
    evaluation (it runs after the artifact is finalised, so an interrupted one must still run)."""
    if not is_complete(stage.out_dir):
        return False
    resource = stage.resource
    if isinstance(resource, SFTJob) and resource.spec.evaluation is not None:
        return (stage.out_dir / EVALUATION_DIR / "summary.json").is_file()
    return True
