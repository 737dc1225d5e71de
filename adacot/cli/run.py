"""`adacot run FILE.yaml` (the local runner) and `adacot eval` (accuracy / pass@k of a model, before/after).

`run` validates the whole file before the first stage starts (exit code 2 with every problem, one per
line), shows a line and a progress bar per stage on stderr, prints the table of stages on stdout, and
exits 1 when a stage failed. Relative paths in the YAML resolve against the file's directory;
`--claim NAME=DIR` maps a PersistentVolumeClaim named in a spec to a local directory (see
adacot.runner). `eval` builds an EvaluationSpec from its flags (validated before any model loads), grades
the model, and the base model with --compare-base, through the grading pipeline.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from tqdm import tqdm

from adacot import runner
from adacot.api.common import ModelSpec
from adacot.api.loader import format_path
from adacot.api.sft_job import EvaluationSpec
from adacot.progress.meter import ProgressCallback, tqdm_callback
from adacot.runner import console, table


def _claims(values: Sequence[str]) -> dict[str, Path]:
    claims: dict[str, Path] = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            raise click.UsageError(f"--claim {value!r}: expected NAME=DIR")
        if not Path(directory).is_dir():
            raise click.UsageError(f"--claim {value!r}: {directory} is not a directory")
        claims[name] = Path(directory)
    return claims


@click.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("adacot-work"),
    show_default=True,
    help="Artifacts go to WORKDIR/<namespace>/<kind>/<name>/.",
)
@click.option("--force", is_flag=True, help="Rerun planned stages from scratch even when complete.")
@click.option(
    "--only", default=None, help="Run only this stage (NAME or Kind/NAME); its inputs must be complete."
)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="NAME=DIR",
    help="Local directory of a PersistentVolumeClaim named in the specs (repeatable).",
)
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
def run(
    file: Path, workdir: Path, force: bool, only: str | None, claims: Sequence[str], progress: bool
) -> None:
    """Run the resources of a multi-document YAML (what `kubectl apply -f` takes) on this machine.

    \b
    Every document is validated before the first stage starts. Stages run in dependency order;
    complete ones (MANIFEST.json + _SUCCESS) are skipped unless --force, interrupted ones resume.
    Relative paths in the specs resolve against the directory of FILE; a path on a claim
    (claimName) resolves against the directory given with --claim NAME=DIR.
    """
    try:
        stages = runner.plan(file, workdir, claims=_claims(claims), only=only)
        planned = runner.plan(file, workdir, claims=_claims(claims)) if only is not None else stages
    except ValueError as error:  # PlanError and the loader's ResourceError
        raise click.UsageError(str(error)) from None
    results = console.execute_shown(stages, progress=progress, force=force, all_stages=planned)
    click.echo(table.table(results))
    for line in table.failures(results):
        click.echo(line, err=True)
    if any(r.status in (runner.FAILED, runner.SKIPPED_DEPENDENCY) for r in results):
        sys.exit(1)


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
        "sampling": {"n": flags["k"], "maxTokens": flags["max_tokens"], "temperature": flags["temperature"],
                     "topP": flags["top_p"], "seed": flags["seed"]},
        "inference": inference,
        "verification": {"workers": flags["workers"]},
        "compareBase": flags["compare_base"] is not None,
    }  # fmt: skip
    try:
        return EvaluationSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid evaluation from the flags: {problems}") from None


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

        try:
            summary = run_evaluation(evaluation, out, model=model, base_model=base, progress=bar)
        except (ValueError, FileNotFoundError) as error:
            raise click.ClickException(str(error)) from None
    click.echo((out / MARKDOWN_NAME).read_text(), err=True)
    click.echo(json.dumps(summary, indent=2))
