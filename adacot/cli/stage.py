"""`adacot stage <kind>`: run one resource from its spec file, the entry point of the operator's pods.

One subcommand per kind, named as kubectl spells the kind (gradingrun, difficultybank, distillationjob,
sftjob). Each reads the resource from --spec (the ConfigMap the operator mounts), writes to --out or
$ADACOT_OUTPUT_DIR, takes the shard from --shard or JOB_COMPLETION_INDEX, and runs the same
`run_resource` as its human command (adacot.cli.grade, .bank, .distill, .sft), with no progress bar: a pod
has no terminal; progress is served to the operator instead (adacot.progress.publish).
Producer artifacts named by input flags are checked against their MANIFEST.json first (every file's
size and sha256, no unlisted data file): a mismatch stops the stage with exit code 2 (ValidationFailed,
no retry) and names the file, so a consumer never trains or samples from data changed after its
producer finished. An input that is not complete yet is left to the pipeline, which refuses it.
"""

from __future__ import annotations

from pathlib import Path

import click

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.sft_job import SFTJob
from adacot.api.stage_pod import ValidationFailed, stage_name
from adacot.artifacts.jsonio import ArtifactError
from adacot.artifacts.store import is_complete, verify_artifact
from adacot.cli import bank, distill, grade, options, sft
from adacot.cli.common import input_errors, output_dir, pick_resource


def verify_inputs(*paths: Path | None) -> None:
    """Check each complete input artifact against its manifest (see the module docstring)."""
    with input_errors():
        for path in paths:
            if path is not None and is_complete(path):
                try:
                    verify_artifact(path)
                except ArtifactError as error:
                    raise ValidationFailed(f"input artifact changed after it was written: {error}") from None


@click.group("stage")
def stage() -> None:
    """Run one stage from its spec file (the entry point of the operator's pods)."""


@stage.command(stage_name(GradingRun.KIND))
@options.STAGE_SPEC
@click.option("--name", default=None, help="Which GradingRun of the file (when it holds several).")
@options.STAGE_SHARD
@options.STAGE_OUT
def stage_grading_run(spec_path: Path, name: str | None, shard: str | None, out: Path | None) -> None:
    """Grade this pod's shard; the shard that finds every shard done merges the artifact."""
    resource = pick_resource(spec_path, GradingRun, name)
    grade.run_resource(resource, output_dir(out), options.shard(shard, resource.spec.shards), bar=False)


@stage.command(stage_name(DifficultyBank.KIND))
@options.STAGE_SPEC
@click.option("--name", default=None, help="Which DifficultyBank of the file (when it holds several).")
@options.RUNS
@options.STAGE_OUT
def stage_difficulty_bank(spec_path: Path, name: str | None, runs: tuple[str, ...], out: Path | None) -> None:
    """Build the bank from its sources."""
    resource = pick_resource(spec_path, DifficultyBank, name)
    sources = options.named_dirs("--run", runs)
    verify_inputs(*sources.values())
    bank.run_resource(resource, output_dir(out), sources)


@stage.command(stage_name(DistillationJob.KIND))
@options.STAGE_SPEC
@click.option("--name", default=None, help="Which DistillationJob of the file (when it holds several).")
@options.BANK_DIR
@options.EVAL_GRADING
@options.STAGE_SHARD
@options.STAGE_OUT
def stage_distillation_job(
    spec_path: Path,
    name: str | None,
    bank_dir: Path,
    eval_grading: Path | None,
    shard: str | None,
    out: Path | None,
) -> None:
    """Distil this pod's shard; the shard that finds every shard done merges the artifact."""
    resource = pick_resource(spec_path, DistillationJob, name)
    verify_inputs(bank_dir, eval_grading)
    out_dir = output_dir(out)
    chosen = options.shard(shard, resource.spec.shards)
    distill.run_resource(resource, out_dir, bank_dir, eval_grading, chosen, bar=False)


@stage.command(stage_name(SFTJob.KIND))
@options.STAGE_SPEC
@click.option("--name", default=None, help="Which SFTJob of the file (when it holds several).")
@options.SFT_DATASET
@options.SFT_MODEL
@options.SFT_NPROC
@options.STAGE_OUT
def stage_sft_job(
    spec_path: Path,
    name: str | None,
    dataset: Path | None,
    model: str | None,
    nproc_per_node: int | None,
    out: Path | None,
) -> None:
    """Train this node's ranks; node 0 writes the artifact."""
    resource = pick_resource(spec_path, SFTJob, name)
    verify_inputs(dataset)
    sft.run_resource(resource, output_dir(out), dataset, model, nproc_per_node)
