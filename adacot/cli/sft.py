"""`adacot sft`: fine-tune the base model on distilled chain-of-thought, for a person at a terminal.

A YAML spec (--spec) or a few flags (--model, --data, hyper-parameters), validated through the same
SFTJob model first; the summary is printed as JSON and bad inputs become one-line errors with exit code 1.
`run_resource` is also what `adacot stage sftjob` (adacot.cli.stage) runs in the operator's pods: the node
rank comes from JOB_COMPLETION_INDEX and the rendezvous from MASTER_ADDR/MASTER_PORT (see
adacot.pipelines.sft_job). Neither passes an evaluation progress factory to run_sft_job, so the
evaluation after training shows no bars: a pod has no terminal, and `adacot sft` has no flag to turn
bars off (a human command that wants them passes a factory like `adacot eval`'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adacot.api.sft_job import SFTJob
from adacot.cli import options
from adacot.cli.common import pick_resource, resource_from_flags, run_pipeline


def run_resource(
    resource: SFTJob, out: Path, dataset: Path | None, model: str | None, nproc: int | None
) -> None:
    """Train this node's ranks into `out` (node 0 writes the artifact), then evaluate when asked."""
    from adacot.pipelines.sft_job import run_sft_job

    def pipeline(_progress: object) -> dict[str, Any]:
        return run_sft_job(
            resource, out, dataset_dir=dataset, model_path=model, nproc_per_node=nproc, progress=None
        )

    run_pipeline(resource, pipeline, errors=(RuntimeError,))


def _sft_job_from_flags(flags: dict[str, Any]) -> SFTJob:
    if flags["model"] is None or flags["data"] is None:
        raise click.UsageError("give --spec, or --model and --data")
    training = {
        "learningRate": flags["lr"],
        "epochs": flags["epochs"],
        "maxSeqLength": flags["max_seq_length"],
        "gradientAccumulationSteps": flags["grad_accum"],
        "perDeviceBatchSize": flags["batch_size"],
    }
    spec = {
        "dataset": {"path": flags["data"], "format": flags["format"]},
        "model": {"path": flags["model"]},
        "training": training,
        "deepspeed": {"stage": flags["deepspeed_stage"]},
    }
    return resource_from_flags(SFTJob, flags["name"], spec)


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
@options.SFT_DATASET
@options.SFT_MODEL
@options.SFT_NPROC
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def sft(
    spec_path: Path | None, dataset: Path | None, nproc_per_node: int | None, out: Path, **flags: Any
) -> None:
    """Fine-tune a model on SFT examples (assistant-only loss, packing, DeepSpeed, resumable)."""
    flags["deepspeed_stage"] = int(flags["deepspeed_stage"])
    if spec_path is not None:
        resource = pick_resource(spec_path, SFTJob, flags["name"] if flags["name"] != "sft" else None)
        run_resource(resource, out, dataset, flags["model"], nproc_per_node)
    else:
        run_resource(_sft_job_from_flags(flags), out, None, None, nproc_per_node)
