"""`adacot grade`: grade questions by a model's own answers, for a person at a terminal.

Flags (or a YAML GradingRun via --spec) are validated into the GradingRun model before any model loads;
the run shows a progress bar and prints the summary as JSON. `run_resource` is also what
`adacot stage gradingrun` (adacot.cli.stage) runs in the operator's pods, without the bar.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from adacot.api.grading_run import GradingRun
from adacot.artifacts.shards import ShardSpec
from adacot.cli import options
from adacot.cli.common import pick_resource, resource_from_flags, run_pipeline


def run_resource(resource: GradingRun, out: Path, shard: ShardSpec | None, bar: bool) -> None:
    """Grade `shard` of the run into `out` (the shard that finds every shard done merges)."""
    from adacot.pipelines.grading_run import run_grading_run

    run_pipeline(
        resource,
        lambda progress: run_grading_run(resource, out, shard=shard, progress=progress),
        bar=bar,
    )


def _grading_run_from_flags(flags: dict[str, Any]) -> GradingRun:
    inference: dict[str, Any] = {"engine": flags["engine"], "batchSize": flags["batch_size"]}
    if flags["endpoint"]:
        inference["endpoint"] = {"url": flags["endpoint"], "model": flags["endpoint_model"] or "default"}
    grader: dict[str, Any] = {
        "method": flags["method"],
        "solvedRule": flags["solved_rule"],
        "levels": {"mode": flags["levels"]},
    }
    if flags["prm"]:
        grader["prm"] = {"model": {"path": flags["prm"]}, "kind": flags["prm_kind"]}
    questions: dict[str, Any] = {"path": flags["questions"], "task": flags["task"]}
    if flags["id_field"]:
        questions["fields"] = {"id": flags["id_field"]}
    spec: dict[str, Any] = {
        "questions": questions, "model": {"path": flags["model"]}, "inference": inference, "grader": grader,
        "sampling": {"samplesPerQuestion": flags["k"], "maxTokens": flags["max_tokens"],
                     "temperature": flags["temperature"], "seed": flags["seed"]},
        "verification": {"workers": flags["workers"]},
    }  # fmt: skip
    if flags["responses"]:
        spec["responses"] = {"path": flags["responses"]}
    return resource_from_flags(GradingRun, flags["name"], spec)


def _grade_flags(func: Callable[..., None]) -> Callable[..., None]:
    decorators = [
        click.option("--questions", type=click.Path(exists=True, dir_okay=True), help="Question dataset."),
        click.option("--task", type=click.Choice(["math", "code"]), default="math", show_default=True),
        click.option("--id-field", default=None, help="Field with a stable question id (else a text hash)."),
        click.option("--model", type=str, help="Directory of the model being graded."),
        click.option("--engine", type=click.Choice(["vllm", "http", "transformers"]), default="vllm",
                     show_default=True),
        click.option("--endpoint", default=None, help="Base URL (with /v1) for --engine http."),
        click.option("--endpoint-model", default=None, help="Model name the endpoint serves."),
        click.option("--k", type=click.IntRange(1), default=1, show_default=True, help="Samples (k)."),
        click.option("--max-tokens", type=click.IntRange(1), default=16384, show_default=True),
        click.option("--temperature", type=click.FloatRange(0, 2), default=0.6, show_default=True),
        click.option("--seed", type=click.IntRange(0), default=0, show_default=True),
        click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True),
        click.option("--prm", default=None, help="Directory of the process reward model."),
        click.option("--prm-kind", type=click.Choice(["discriminative", "languageModel"]),
                     default="discriminative", show_default=True),
        click.option("--method", type=click.Choice(["prm", "passRate"]), default="prm", show_default=True),
        click.option("--solved-rule", type=click.Choice(["any", "majority", "threshold"]), default="any",
                     show_default=True),
        click.option("--levels", type=click.Choice(["bins", "quantiles"]), default="bins", show_default=True),
        click.option("--responses", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Pre-generated responses (JSONL: id, response) to grade instead of generating."),
        click.option("--workers", type=click.IntRange(1), default=4, show_default=True, help="Verifiers."),
        click.option("--name", default="grade", show_default=True, help="Run name / resource to pick."),
    ]  # fmt: skip
    for option in reversed(decorators):
        func = option(func)
    return func


@click.command("grade")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file holding a GradingRun (flags describing the run are then ignored).",
)
@_grade_flags
@click.option("--shard", default=None, help="Grade shard i of N only (i/N); the last shard done merges.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def grade(spec_path: Path | None, shard: str | None, out: Path, no_progress: bool, **flags: Any) -> None:
    """Grade questions by a model's own answers: verify, PRM-score the unsolved, assign levels 0..5."""
    if spec_path is not None:
        resource = pick_resource(spec_path, GradingRun, flags["name"] if flags["name"] != "grade" else None)
    else:
        missing = [f"--{n}" for n in ("questions", "model") if not flags[n]]
        if missing:
            raise click.UsageError(f"give --spec FILE, or at least {' and '.join(missing)}")
        resource = _grading_run_from_flags(flags)
    run_resource(resource, out, options.shard(shard, resource.spec.shards), not no_progress)
