"""`adacot grade`, `adacot bank` and `adacot stage gradingrun|difficultybank`.

`grade` and `bank` are for people: flags (or a YAML spec via --spec) and progress bars. `stage` is the
pod entry point the operator runs: always a spec file, the shard from --shard or JOB_COMPLETION_INDEX,
the output directory from --out or $ADACOT_OUTPUT_DIR. All of them validate the spec into the pydantic
models first (a bad flag or field stops before any model is loaded) and print the summary as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from tqdm import tqdm

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.grading_run import GradingRun
from adacot.api.loader import format_path
from adacot.artifacts.jsonio import ArtifactError
from adacot.artifacts.shards import ShardSpec
from adacot.cli.common import STAGE_OUT, STAGE_SPEC, output_dir, pick_resource
from adacot.progress.meter import tqdm_callback
from adacot.progress.publish import reported

R = TypeVar("R", GradingRun, DifficultyBank)


def _validated(kind: type[R], data: dict[str, Any]) -> R:
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid {kind.KIND} from the flags: {problems}") from None


def _shard(text: str | None, parallelism: int) -> ShardSpec | None:
    try:
        if text is not None:
            return ShardSpec.parse(text)
        if os.environ.get("JOB_COMPLETION_INDEX"):
            return ShardSpec.from_env(parallelism)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    return None


@contextmanager
def _input_errors() -> Iterator[None]:
    """Bad inputs found by the stage (missing files, malformed rows, mixed models: ValueError and
    FileNotFoundError subclasses, unreadable artifacts) become one-line errors with exit code 1."""
    try:
        yield
    except (ValueError, FileNotFoundError, ArtifactError) as error:
        raise click.ClickException(str(error)) from None


def _run_grading(resource: GradingRun, out: Path, shard: ShardSpec | None, bar: bool) -> None:
    from adacot.pipelines.grading_run import run_grading_run

    with (
        tqdm(total=0, unit="q", desc=resource.metadata.name, disable=not bar) as progress_bar,
        reported(tqdm_callback(progress_bar), out) as progress,
        _input_errors(),
    ):
        summary = run_grading_run(resource, out, shard=shard, progress=progress)
    click.echo(json.dumps(summary, indent=2))


def _flags_to_gradingrun(flags: dict[str, Any]) -> GradingRun:
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
        "sampling": {"n": flags["k"], "maxTokens": flags["max_tokens"], "temperature": flags["temperature"],
                     "seed": flags["seed"]},
        "verification": {"workers": flags["workers"]},
    }  # fmt: skip
    if flags["responses"]:
        spec["responses"] = {"path": flags["responses"]}
    return _validated(GradingRun, {"kind": "GradingRun", "metadata": {"name": flags["name"]}, "spec": spec})


def _grade_flags(func: Callable[..., None]) -> Callable[..., None]:
    options = [
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
    for option in reversed(options):
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
        resource = _flags_to_gradingrun(flags)
    _run_grading(resource, out, _shard(shard, resource.spec.parallelism), not no_progress)


def _runs(pairs: Sequence[str]) -> dict[str, Path]:
    runs = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise click.UsageError(f"--run {pair!r}: expected NAME=DIR")
        runs[name] = Path(path)
    return runs


def _run_bank(resource: DifficultyBank, out: Path, runs: dict[str, Path]) -> None:
    from adacot.pipelines.difficulty_bank import run_difficulty_bank

    with _input_errors(), reported(out=out):
        summary = run_difficulty_bank(resource, out, runs=runs)
    click.echo(json.dumps(summary, indent=2))


@click.command("bank")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file holding a DifficultyBank.",
)
@click.option("--source", "sources", multiple=True, help="A grading output directory or graded JSONL file.")
@click.option("--run", "runs", multiple=True, help="NAME=DIR: where GradingRun NAME wrote its output.")
@click.option("--model", default=None, help="Model directory the bank is for (when no source names it).")
@click.option(
    "--benchmark",
    "benchmarks",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Benchmark file to decontaminate against (JSONL/Parquet with a problem field).",
)
@click.option("--ngram", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option(
    "--on-conflict",
    type=click.Choice(["first", "hardest", "easiest"]),
    default="first",
    show_default=True,
    help="Which duplicate to keep.",
)
@click.option("--name", default="bank", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def bank(
    spec_path: Path | None,
    sources: tuple[str, ...],
    runs: tuple[str, ...],
    model: str | None,
    benchmarks: tuple[str, ...],
    ngram: int,
    threshold: float,
    on_conflict: str,
    name: str,
    out: Path,
) -> None:
    """Merge grading outputs of one model into a deduplicated, decontaminated difficulty bank."""
    if spec_path is not None:
        resource = pick_resource(spec_path, DifficultyBank, name if name != "bank" else None)
    else:
        if not sources and not runs:
            raise click.UsageError("give --spec FILE, or at least one --source / --run")
        spec: dict[str, Any] = {
            "sources": [{"path": s} for s in sources],
            "dedupe": {"onConflict": on_conflict},
        }
        if model:
            spec["model"] = {"path": model}
        if benchmarks:
            spec["decontamination"] = {
                "benchmarks": [{"path": b} for b in benchmarks],
                "ngram": ngram,
                "threshold": threshold,
            }
        resource = _validated(
            DifficultyBank, {"kind": "DifficultyBank", "metadata": {"name": name}, "spec": spec}
        )
    _run_bank(resource, out, _runs(runs))


@click.group("stage")
def stage() -> None:
    """Run one stage from its spec file (the entry point of the operator's pods)."""


@stage.command("gradingrun")
@STAGE_SPEC
@click.option("--name", default=None, help="Which GradingRun of the file (when it holds several).")
@click.option(
    "--shard", default=None, help="i/N; default JOB_COMPLETION_INDEX of spec.parallelism, else all."
)
@STAGE_OUT
def stage_gradingrun(spec_path: Path, name: str | None, shard: str | None, out: Path | None) -> None:
    """Grade this pod's shard; the shard that finds every shard done merges the artifact."""
    resource = pick_resource(spec_path, GradingRun, name)
    _run_grading(resource, output_dir(out), _shard(shard, resource.spec.parallelism), bar=False)


@stage.command("difficultybank")
@STAGE_SPEC
@click.option("--name", default=None, help="Which DifficultyBank of the file (when it holds several).")
@click.option("--run", "runs", multiple=True, help="NAME=DIR: where GradingRun NAME wrote its output.")
@STAGE_OUT
def stage_difficultybank(spec_path: Path, name: str | None, runs: tuple[str, ...], out: Path | None) -> None:
    """Build the bank from its sources."""
    _run_bank(pick_resource(spec_path, DifficultyBank, name), output_dir(out), _runs(runs))
