"""Running planned stages: each kind's pipeline with its inputs' artifact directories.

Callers: `adacot run` and `adacot demo` (through adacot.runner.console), tests. `execute` skips a stage
whose artifact is complete (MANIFEST.json + _SUCCESS) unless forced, and one whose input failed; else it
calls the kind's `run_<kind>` (adacot.pipelines) — the same function a stage pod calls — with inputs
resolved to the producers' artifact directories. A failure is recorded with the exception's message and
the run goes on with the stages that do not depend on it. Interrupted stages resume by themselves.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.artifacts.store import is_complete
from adacot.artifacts.summary import read_summary
from adacot.progress.meter import ProgressCallback
from adacot.runner.planning import Key, Stage

DONE, SKIPPED_COMPLETE = "done", "skipped-complete"
FAILED, SKIPPED_DEPENDENCY = "failed", "skipped-dependency-failed"


@dataclass
class StageResult:
    stage: Stage
    status: str
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None


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
        return StageResult(stage, SKIPPED_COMPLETE, summary=read_summary(stage.out_dir))
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


def run_stage(
    stage: Stage, directories: Mapping[Key, Path], progress: ProgressCallback | None
) -> dict[str, Any]:
    """Call the pipeline of the stage's kind with its inputs' artifact directories."""
    resource, inputs = stage.resource, {k[1:]: directories[k] for k in stage.inputs}
    if isinstance(resource, GradingRun):
        from adacot.pipelines.grading_run import run_grading_run

        return run_grading_run(resource, stage.out_dir, progress=progress)
    if isinstance(resource, DifficultyBank):
        from adacot.pipelines.difficulty_bank import run_difficulty_bank

        runs = {name: path for (kind, name), path in inputs.items() if kind == "GradingRun"}
        return run_difficulty_bank(resource, stage.out_dir, runs=runs)
    if isinstance(resource, DistillationJob):
        from adacot.pipelines.distillation_job import run_distillation_job

        bank = inputs[("DifficultyBank", resource.spec.bank_ref.name)]
        peval = resource.spec.distribution.from_grading_run
        eval_dir = inputs[("GradingRun", peval.name)] if peval else None
        return run_distillation_job(
            resource, stage.out_dir, bank_dir=bank, eval_dir=eval_dir, progress=progress
        )
    from adacot.pipelines.sft_job import run_sft_job

    ref = resource.spec.dataset.distillation_job_ref
    dataset = inputs[("DistillationJob", ref.name)] if ref else None
    return run_sft_job(resource, stage.out_dir, dataset_dir=dataset, progress=_labelled(progress))


def _labelled(progress: ProgressCallback | None) -> Callable[[str], ProgressCallback | None] | None:
    """The stage's one bar for every benchmark the SFT evaluation grades."""
    return None if progress is None else (lambda _label: progress)


def stage_complete(stage: Stage) -> bool:
    """The stage's artifact is complete (MANIFEST.json + _SUCCESS)."""
    return is_complete(stage.out_dir)
