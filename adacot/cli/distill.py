"""`adacot distill`: sample a difficulty bank by a distribution and distil verified CoT from a teacher.

For a person at a terminal: flags (or a YAML DistillationJob via --spec) are validated into the
DistillationJob model before the bank is read or the teacher is called; the run shows a progress bar and
prints the summary as JSON. `run_resource` is also what `adacot stage distillationjob`
(adacot.cli.stage) runs in the operator's pods, without the bar. The teacher is any OpenAI-compatible
endpoint; a teacher that cannot be reached is a one-line error with exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adacot.api.distillation_job import DistillationJob
from adacot.artifacts.shards import ShardSpec
from adacot.cli import options
from adacot.cli.common import pick_resource, resource_from_flags, run_pipeline
from adacot.progress.meter import ProgressCallback


def run_resource(
    resource: DistillationJob,
    out: Path,
    bank_dir: Path,
    eval_dir: Path | None,
    shard: ShardSpec | None,
    bar: bool,
) -> None:
    """Distil `shard` of the job into `out` (the shard that finds every shard done merges)."""
    from adacot.backends.teacher_server import TeacherServerError
    from adacot.pipelines.distillation_job import run_distillation_job

    def pipeline(progress: ProgressCallback) -> dict[str, Any]:
        return run_distillation_job(
            resource, out, bank_dir=bank_dir, eval_dir=eval_dir, shard=shard, progress=progress
        )

    run_pipeline(resource, pipeline, bar=bar, errors=(TeacherServerError,))


def _distillation_job_from_flags(flags: dict[str, Any]) -> DistillationJob:
    """A DistillationJob built from `adacot distill` flags, validated by the same models as YAML."""
    if not flags["teacher_url"]:
        raise click.UsageError("give --spec FILE, or --teacher-url (an OpenAI-compatible base URL with /v1)")
    if flags["eval_grading"] is not None and not (flags["prior"] or flags["table"]):
        distribution: dict[str, Any] = {
            "fromGradingRun": {"name": "eval"},
            "excludeEasy": flags["exclude_easy"],
        }
    else:
        chosen = options.distribution_spec(
            flags["prior"] or ("5:4:3:2:1" if not flags["table"] else None),
            flags["table"], flags["easy_weight"], flags["exclude_easy"],
        )  # fmt: skip
        distribution = chosen.model_dump(mode="json", by_alias=True, exclude_none=True)
    teacher = {
        "endpoint": {"url": flags["teacher_url"], "model": flags["teacher_model"],
                     "api": flags["teacher_api"], "concurrency": flags["concurrency"]},
        "sampling": {"samplesPerQuestion": flags["n"], "temperature": flags["temperature"],
                     "topP": flags["top_p"], "maxTokens": flags["max_tokens"], "seed": flags["seed"]},
        "maxAttempts": flags["max_attempts"], "keep": flags["keep"],
    }  # fmt: skip
    spec: dict[str, Any] = {
        "bankRef": {"name": "bank"}, "distribution": distribution, "size": flags["size"],
        "seed": flags["seed"],
        "shortfall": flags["shortfall"], "balanceBy": flags["balance_by"], "teacher": teacher,
        "verification": {"workers": flags["workers"]}, "exports": list(flags["export"]),
        "filter": {"maxTokens": flags["filter_max_tokens"],
                   "requireReasoning": not flags["allow_no_reasoning"]},
    }  # fmt: skip
    if flags["benchmark"]:
        spec["decontamination"] = {"benchmarks": [{"path": b} for b in flags["benchmark"]]}
    return resource_from_flags(DistillationJob, flags["name"], spec)


def _distill_flags(func: Any) -> Any:
    decorators = [
        click.option("--teacher-url", default=None, help="OpenAI-compatible base URL with /v1."),
        click.option("--teacher-model", default="default", show_default=True, help="Model name to send."),
        click.option("--teacher-api", type=click.Choice(["chat", "completions"]), default="chat",
                     show_default=True),
        click.option("--concurrency", type=click.IntRange(1), default=32, show_default=True),
        click.option("--size", "-n", "size", type=click.IntRange(1), default=2000, show_default=True),
        click.option("--seed", type=click.IntRange(0), default=0, show_default=True),
        click.option("--prior", default=None, help="P_prior weights of levels 1..5 (default 5:4:3:2:1)."),
        click.option("--table", default=None, help="Explicit weights per level, e.g. 1=3,2=2,3=1."),
        click.option("--easy-weight", type=click.FloatRange(0), default=0.0, show_default=True),
        click.option("--exclude-easy", is_flag=True, help="Give level 0 no share."),
        click.option("--shortfall", type=click.Choice(["redistribute", "fail"]), default="redistribute",
                     show_default=True),
        click.option("--balance-by", type=click.Choice(["none", "source"]), default="none",
                     show_default=True),
        click.option("--samples", "n", type=click.IntRange(1), default=1, show_default=True,
                     help="Teacher samples per request."),
        click.option("--temperature", type=click.FloatRange(0, 2), default=0.6, show_default=True),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True),
        click.option("--max-tokens", type=click.IntRange(1), default=32768, show_default=True),
        click.option("--max-attempts", type=click.IntRange(1, 64), default=4, show_default=True),
        click.option("--keep", type=click.Choice(["first", "shortest", "all"]), default="first",
                     show_default=True),
        click.option("--filter-max-tokens", type=click.IntRange(1), default=None,
                     help="Drop CoT longer than this (the SFT context)."),
        click.option("--allow-no-reasoning", is_flag=True,
                     help="Keep answer-only outputs (with an empty think block)."),
        click.option("--export", multiple=True, type=click.Choice(["sharegpt", "alpaca"]),
                     help="Also write LLaMA-Factory formats."),
        click.option("--benchmark", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Evaluation set to decontaminate against."),
        click.option("--workers", type=click.IntRange(1), default=4, show_default=True, help="Verifiers."),
    ]  # fmt: skip
    for option in reversed(decorators):
        func = option(func)
    return func


@click.command("distill")
@click.option(
    "--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="A YAML file holding a DistillationJob (the flags describing the job are then ignored).",
)  # fmt: skip
@options.BANK_DIR
@options.EVAL_GRADING
@_distill_flags
@options.STAGE_SHARD
@click.option("--name", default="distill", show_default=True, help="Job name / resource to pick.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def distill(
    spec_path: Path | None, bank_dir: Path, shard: str | None, out: Path, no_progress: bool, **flags: Any
) -> None:
    """Sample the bank by a difficulty distribution and distil verified CoT from a teacher."""
    if spec_path is not None:
        resource = pick_resource(
            spec_path, DistillationJob, flags["name"] if flags["name"] != "distill" else None
        )
    else:
        resource = _distillation_job_from_flags(flags)
    chosen = options.shard(shard, resource.spec.shards)
    run_resource(resource, out, bank_dir, flags["eval_grading"], chosen, not no_progress)
