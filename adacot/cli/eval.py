"""`adacot eval`: accuracy and pass@k of a model on benchmarks, before/after fine-tuning.

Builds an EvaluationSpec from its flags (validated before any model loads), grades the model, and the base
model with --compare-base, through the grading pipeline (adacot.pipelines.evaluation): the same engines
and verifiers a GradingRun uses. Writes the evaluation artifact to --out, prints its Markdown table on
stderr and its summary as JSON on stdout. An SFTJob with spec.evaluation runs the same evaluation
inside its pipeline.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from adacot.api.common import ModelSpec
from adacot.api.sft_job import EvaluationSpec
from adacot.cli.common import input_errors, validated
from adacot.progress.meter import ProgressCallback, tqdm_callback


def _dataset(value: str, task: str) -> dict[str, Any]:
    name, sep, path = value.partition("=")
    if not sep:
        name, path = Path(value).stem, value
    if not Path(path).exists():
        raise click.UsageError(f"--dataset {value!r}: {path} does not exist")
    return {"name": name, "path": str(Path(path).resolve()), "task": task}


def _evaluation(flags: dict[str, Any]) -> EvaluationSpec:
    inference: dict[str, Any] = {"engine": flags["engine"], "batchSize": flags["batch_size"]}
    inference["vllm"] = {"extraArgs": list(flags["vllm_args"])}
    data = {
        "datasets": [_dataset(d, flags["task"]) for d in flags["datasets"]],
        "sampling": {"samplesPerQuestion": flags["k"], "maxTokens": flags["max_tokens"],
                     "temperature": flags["temperature"], "topP": flags["top_p"], "seed": flags["seed"]},
        "inference": inference,
        "verification": {"workers": flags["workers"]},
        "compareBase": flags["compare_base"] is not None,
    }  # fmt: skip
    return validated(EvaluationSpec, data, "evaluation from the flags")


def _model(path: Path, max_model_len: int | None) -> ModelSpec:
    if not (path / "config.json").is_file():
        raise click.UsageError(f"{path}: not a model directory (no config.json)")
    return ModelSpec(path=str(path.resolve()), max_model_len=max_model_len)


@click.command("eval")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the model to evaluate.",
)
@click.option(
    "--dataset",
    "datasets",
    required=True,
    multiple=True,
    metavar="[NAME=]FILE",
    help="Benchmark file (JSONL/Parquet with problem and answer; repeatable).",
)
@click.option(
    "--k",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Samples per question; pass@k is reported for k > 1.",
)
@click.option(
    "--compare-base",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also evaluate this (base) model and print a before/after table.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(["math", "code"]), default="math", show_default=True)
@click.option("--engine", type=click.Choice(["vllm", "transformers"]), default="vllm", show_default=True)
@click.option("--max-tokens", type=click.IntRange(1), default=32768, show_default=True)
@click.option("--max-model-len", type=click.IntRange(1), default=None)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.6, show_default=True)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=4, show_default=True, help="Verifier workers.")
@click.option(
    "--vllm-arg", "vllm_args", multiple=True, help="Extra vLLM engine flag, e.g. --vllm-arg=--enforce-eager."
)
@click.option("--progress/--no-progress", default=True)
def eval_command(model_dir: Path, compare_base: Path | None, out: Path, progress: bool, **flags: Any) -> None:
    """Accuracy and pass@k of a model on benchmarks (graded like a GradingRun); JSON on stdout."""
    from adacot.pipelines.evaluation import MARKDOWN_NAME, run_evaluation

    flags["compare_base"] = compare_base
    evaluation = _evaluation(flags)
    model = _model(model_dir, flags["max_model_len"])
    base = _model(compare_base, flags["max_model_len"]) if compare_base is not None else None
    with ExitStack() as stack:

        def bar(label: str) -> ProgressCallback:
            return tqdm_callback(
                stack.enter_context(tqdm(total=0, unit="q", desc=label, disable=not progress))
            )

        with input_errors():
            summary = run_evaluation(evaluation, out, model=model, base_model=base, progress=bar)
    click.echo((out / MARKDOWN_NAME).read_text(), err=True)
    click.echo(json.dumps(summary, indent=2))
