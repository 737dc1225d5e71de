"""`adacot sft` and `adacot stage sftjob`: fine-tune the base model on distilled chain-of-thought.

`sft` is for people: a YAML spec (--spec) or a few flags (--model, --data, hyper-parameters), validated
through the same SFTJob model first. `stage sftjob` is the pod entry point the operator runs: always a
spec file; the output directory from --out or $ADACOT_OUTPUT_DIR; the node rank from
JOB_COMPLETION_INDEX and the rendezvous from MASTER_ADDR/MASTER_PORT (see adacot.pipelines.sft_job).
Both print the summary as JSON; bad inputs become one-line errors with exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from adacot.api.loader import format_path
from adacot.api.sft_job import SFTJob
from adacot.artifacts.jsonio import ArtifactError
from adacot.cli.common import STAGE_OUT, STAGE_SPEC, output_dir, pick_resource


def _from_flags(flags: dict[str, Any]) -> SFTJob:
    if flags["model"] is None or flags["data"] is None:
        raise click.UsageError("give --spec, or --model and --data")
    training = {
        "learningRate": flags["lr"],
        "epochs": flags["epochs"],
        "maxSeqLength": flags["max_seq_length"],
        "gradientAccumulationSteps": flags["grad_accum"],
        "perDeviceBatchSize": flags["batch_size"],
    }
    data = {
        "apiVersion": "adacot.dev/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": flags["name"]},
        "spec": {
            "dataset": {"path": flags["data"], "format": flags["format"]},
            "model": {"path": flags["model"]},
            "training": training,
            "deepspeed": {"stage": flags["deepspeed_stage"]},
        },
    }
    try:
        return SFTJob.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid SFTJob from the flags: {problems}") from None


def _run(resource: SFTJob, out: Path, dataset: Path | None, model: str | None, nproc: int | None) -> None:
    from adacot.pipelines.sft_job import run_sft_job
    from adacot.progress.publish import reported

    try:
        with reported(out=out):
            summary = run_sft_job(resource, out, dataset_dir=dataset, model_path=model, nproc_per_node=nproc)
    except (ValueError, FileNotFoundError, ArtifactError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(summary, indent=2))


_DATASET = click.option(
    "--dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Output directory of the DistillationJob the spec references.",
)
_MODEL = click.option("--model", default=None, help="Base model directory (overrides spec.model).")
_NPROC = click.option(
    "--nproc-per-node",
    type=click.IntRange(1),
    default=None,
    help="Training processes per node (default $ADACOT_NPROC_PER_NODE, else resources.gpus).",
)


@click.command("sft")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A YAML file holding an SFTJob (the hyper-parameter flags are then ignored).",
)
@click.option(
    "--data", default=None, help="Training data file or directory (with --model, instead of --spec)."
)
@click.option("--format", "format", type=click.Choice(["messages", "sharegpt", "alpaca"]), default="messages")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--max-seq-length", type=int, default=16384, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--grad-accum", type=int, default=8, show_default=True)
@click.option("--deepspeed-stage", type=click.Choice(["0", "2", "3"]), default="0", show_default=True)
@click.option("--name", default="sft", show_default=True)
@_DATASET
@_MODEL
@_NPROC
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def sft(
    spec_path: Path | None, dataset: Path | None, nproc_per_node: int | None, out: Path, **flags: Any
) -> None:
    """Fine-tune a model on SFT examples (assistant-only loss, packing, DeepSpeed, resumable)."""
    flags["deepspeed_stage"] = int(flags["deepspeed_stage"])
    if spec_path is not None:
        resource = pick_resource(spec_path, SFTJob, flags["name"] if flags["name"] != "sft" else None)
        _run(resource, out, dataset, flags["model"], nproc_per_node)
    else:
        _run(_from_flags(flags), out, None, None, nproc_per_node)


def _attach_stage() -> None:
    """`adacot stage sftjob`, on the `stage` group of adacot.cli.grade."""
    from adacot.cli.grade import stage

    @stage.command("sftjob")
    @STAGE_SPEC
    @click.option("--name", default=None, help="Which SFTJob of the file (when it holds several).")
    @_DATASET
    @_MODEL
    @_NPROC
    @STAGE_OUT
    def stage_sftjob(
        spec_path: Path,
        name: str | None,
        dataset: Path | None,
        model: str | None,
        nproc_per_node: int | None,
        out: Path | None,
    ) -> None:
        """Train this node's ranks; node 0 writes the artifact."""
        _run(pick_resource(spec_path, SFTJob, name), output_dir(out), dataset, model, nproc_per_node)


_attach_stage()
