"""`adacot sample` (and, added later in this module, `adacot distill` and `adacot stage distillationjob`).

`sample` draws N questions from a DifficultyBank artifact by a target level distribution and writes them
as an artifact of BankEntry rows (data/, MANIFEST.json whose metrics hold target vs achieved shares and
the shortfall moves, summary.json, _SUCCESS), then prints a table of target vs achieved. The
distribution flags are validated through the same pydantic models a DistillationJob YAML uses, before
the bank is read; sampling errors (empty bank, N too large, a short level under --shortfall fail)
become one-line errors with exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import click
from pydantic import ValidationError

from adacot.api.distillation_job import DistributionSpec
from adacot.api.loader import format_path
from adacot.artifacts.jsonio import ArtifactError
from adacot.artifacts.manifest import Manifest, atomic_write_bytes
from adacot.artifacts.rows import BankEntry
from adacot.artifacts.store import ArtifactDir, read_records
from adacot.stages.distribution import LEVELS, Distribution, from_grading_summary, resolve
from adacot.stages.sample import BalanceBy, SampleResult, Shortfall, sample

RECORDS_PER_FILE = 10_000
SUMMARY_NAME = "summary.json"


def _numbers(text: str, flag: str) -> list[float]:
    try:
        return [float(part) for part in text.split(":")]
    except ValueError:
        raise click.UsageError(
            f"{flag} {text!r}: expected numbers separated by ':', e.g. 5:4:3:2:1"
        ) from None


def _table(text: str) -> dict[str, float]:
    table: dict[str, float] = {}
    for pair in text.split(","):
        level, sep, weight = pair.partition("=")
        try:
            table[level.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            raise click.UsageError(f"--table {text!r}: expected LEVEL=WEIGHT pairs, e.g. 0=0.1,1=0.3")
    return table


def _distribution_spec(
    prior: str | None, table: str | None, easy_weight: float, exclude_easy: bool
) -> DistributionSpec:
    data: dict[str, Any] = {"excludeEasy": exclude_easy}
    if prior is not None:
        data["prior"] = {"weights": _numbers(prior, "--prior"), "easyWeight": easy_weight}
    if table is not None:
        data["table"] = _table(table)
    try:
        return DistributionSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid distribution: {problems}") from None


def _distribution(
    prior: str | None, grading: Path | None, table: str | None, easy_weight: float, exclude_easy: bool
) -> Distribution:
    chosen = [
        flag for flag, value in (("--prior", prior), ("--from-grading", grading), ("--table", table)) if value
    ]
    if len(chosen) != 1:
        raise click.UsageError(f"give exactly one of --prior, --from-grading, --table (got {len(chosen)})")
    try:
        if grading is not None:
            from adacot.pipelines.grading_run import read_summary

            return from_grading_summary(read_summary(grading), exclude_easy=exclude_easy)
        return resolve(_distribution_spec(prior, table, easy_weight, exclude_easy))
    except (ValueError, FileNotFoundError, ArtifactError) as error:
        raise click.ClickException(str(error)) from None


def write_sample(out: Path, result: SampleResult, name: str, spec: dict[str, Any]) -> Manifest:
    """The sample as an artifact: BankEntry shards, summary.json, MANIFEST.json (metrics: the report)."""
    artifact = ArtifactDir(out).prepare()
    entries = list(result.entries)
    for number, start in enumerate(range(0, len(entries), RECORDS_PER_FILE)):
        artifact.write_shard(f"part-{number:05d}.jsonl", entries[start : start + RECORDS_PER_FILE], BankEntry)
    report = result.report()
    atomic_write_bytes(artifact.root / SUMMARY_NAME, (json.dumps(report, indent=2) + "\n").encode())
    return artifact.finalize(
        Manifest(
            kind="Sample",
            name=name,
            record_type=BankEntry.__name__,
            spec=spec,
            seed=result.seed,
            metrics=report,
        )
    )


def format_table(result: SampleResult) -> str:
    """Target vs achieved per level, then the shortfall messages."""
    lines = [f"{'level':>5}  {'target%':>8}  {'target':>7}  {'available':>9}  {'taken':>6}  {'achieved%':>9}"]
    achieved = result.achieved_shares()
    for lv in LEVELS:
        t = result.levels[lv]
        lines.append(
            f"{lv:>5}  {100 * result.distribution.shares[lv]:>8.2f}  {t.target:>7}  {t.available:>9}  "
            f"{t.taken:>6}  {100 * achieved[lv]:>9.2f}"
        )
    lines.append(
        f"{'all':>5}  {100.0:>8.2f}  {result.n:>7}  {'':>9}  {len(result.entries):>6}  {100.0:>9.2f}"
    )
    return "\n".join([result.distribution.describe(), *lines, *result.messages])


@click.command("sample")
@click.option(
    "--bank",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="A DifficultyBank artifact directory.",
)
@click.option("--size", "-n", type=click.IntRange(1), required=True, help="N, questions to draw.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--prior", default=None, help="P_prior: weights of levels 1..5, strictly decreasing, e.g. 5:4:3:2:1."
)
@click.option(
    "--easy-weight",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Weight of level 0 with --prior.",
)
@click.option(
    "--from-grading",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="P_eval: a GradingRun artifact directory (its summary.json level counts).",
)
@click.option("--table", default=None, help="Explicit weights per level, e.g. 0=0.1,1=0.3,2=0.3,3=0.3.")
@click.option("--exclude-easy", is_flag=True, help="Give level 0 no share (with --from-grading or --table).")
@click.option(
    "--shortfall",
    type=click.Choice(["redistribute", "fail"]),
    default="redistribute",
    show_default=True,
    help="A level with too few questions: move its deficit to the nearest levels, or fail.",
)
@click.option(
    "--balance-by",
    type=click.Choice(["none", "source"]),
    default="none",
    show_default=True,
    help="Also spread each level's picks evenly over question sources.",
)
@click.option("--name", default="sample", show_default=True, help="Name recorded in the manifest.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
def sample_command(
    bank: Path,
    size: int,
    seed: int,
    prior: str | None,
    easy_weight: float,
    from_grading: Path | None,
    table: str | None,
    exclude_easy: bool,
    shortfall: str,
    balance_by: str,
    name: str,
    out: Path,
) -> None:
    """Draw N bank questions whose levels follow a distribution (P_prior, P_eval or a table)."""
    distribution = _distribution(prior, from_grading, table, easy_weight, exclude_easy)
    spec = {
        "bank": str(bank),
        "size": size,
        "seed": seed,
        "shortfall": shortfall,
        "balanceBy": balance_by,
        "distribution": distribution.as_json(),
    }
    try:
        entries = list(read_records(bank, BankEntry))
        result = sample(
            entries,
            distribution,
            size,
            seed,
            shortfall=cast(Shortfall, shortfall),
            balance_by=cast(BalanceBy, balance_by),
        )
        write_sample(out, result, name, spec)
    except (ValueError, FileNotFoundError, ArtifactError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_table(result))
    click.echo(f"wrote {len(result.entries)} questions to {out}")


# ---------------------------------------------------------------------------------------------------------
# `adacot distill` and `adacot stage distillationjob` go below (another part of issue 4).


def _job_from_flags(flags: dict[str, Any]) -> Any:
    """A DistillationJob built from `adacot distill` flags, validated by the same models as YAML."""
    from adacot.api.distillation_job import DistillationJob

    if not flags["teacher_url"]:
        raise click.UsageError("give --spec FILE, or --teacher-url (an OpenAI-compatible base URL with /v1)")
    if flags["eval_grading"] is not None and not (flags["prior"] or flags["table"]):
        distribution: dict[str, Any] = {
            "fromGradingRun": {"name": "eval"},
            "excludeEasy": flags["exclude_easy"],
        }
    else:
        chosen = _distribution_spec(
            flags["prior"] or ("5:4:3:2:1" if not flags["table"] else None),
            flags["table"], flags["easy_weight"], flags["exclude_easy"],
        )  # fmt: skip
        distribution = chosen.model_dump(mode="json", by_alias=True, exclude_none=True)
    teacher = {
        "endpoint": {"url": flags["teacher_url"], "model": flags["teacher_model"],
                     "api": flags["teacher_api"], "concurrency": flags["concurrency"]},
        "sampling": {"n": flags["n"], "temperature": flags["temperature"], "topP": flags["top_p"],
                     "maxTokens": flags["max_tokens"], "seed": flags["seed"]},
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
    data = {"kind": "DistillationJob", "metadata": {"name": flags["name"]}, "spec": spec}
    try:
        return DistillationJob.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid DistillationJob from the flags: {problems}") from None


def _run_distill(
    resource: Any, out: Path, bank: Path, eval_dir: Path | None, shard: str | None, bar: bool
) -> None:
    """Run the pipeline with a progress bar; input errors become one-line errors with exit code 1."""
    import os

    from tqdm import tqdm

    from adacot.artifacts.shards import ShardSpec
    from adacot.backends.teacher_server import TeacherServerError
    from adacot.pipelines.distillation_job import run_distillation_job
    from adacot.progress.meter import tqdm_callback
    from adacot.progress.publish import reported

    try:
        chosen = ShardSpec.parse(shard) if shard is not None else None
        if chosen is None and os.environ.get("JOB_COMPLETION_INDEX"):
            chosen = ShardSpec.from_env(resource.spec.parallelism)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    with (
        tqdm(total=0, unit="q", desc=resource.metadata.name, disable=not bar) as progress_bar,
        reported(tqdm_callback(progress_bar), out) as progress,
    ):
        try:
            summary = run_distillation_job(
                resource,
                out,
                bank_dir=bank,
                eval_dir=eval_dir,
                shard=chosen,
                progress=progress,
            )
        except (ValueError, FileNotFoundError, ArtifactError, TeacherServerError) as error:
            raise click.ClickException(str(error)) from None
    click.echo(json.dumps(summary, indent=2))


_BANK = click.option(
    "--bank", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
    help="The DifficultyBank artifact directory (what bankRef names).",
)  # fmt: skip
_EVAL = click.option(
    "--eval-grading", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
    help="The GradingRun artifact on an evaluation set (P_eval; what fromGradingRun names).",
)  # fmt: skip
_SHARD = click.option(
    "--shard", default=None, help="i/N; default JOB_COMPLETION_INDEX of spec.parallelism, else all."
)


def _distill_flags(func: Any) -> Any:
    options = [
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
    for option in reversed(options):
        func = option(func)
    return func


@click.command("distill")
@click.option(
    "--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="A YAML file holding a DistillationJob (the flags describing the job are then ignored).",
)  # fmt: skip
@_BANK
@_EVAL
@_distill_flags
@_SHARD
@click.option("--name", default="distill", show_default=True, help="Job name / resource to pick.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def distill(
    spec_path: Path | None, bank: Path, shard: str | None, out: Path, no_progress: bool, **flags: Any
) -> None:
    """Sample the bank by a difficulty distribution and distil verified CoT from a teacher."""
    if spec_path is not None:
        from adacot.api.distillation_job import DistillationJob
        from adacot.cli.common import pick_resource

        resource = pick_resource(
            spec_path, DistillationJob, flags["name"] if flags["name"] != "distill" else None
        )
    else:
        resource = _job_from_flags(flags)
    _run_distill(resource, out, bank, flags["eval_grading"], shard, not no_progress)


def _attach_stage() -> None:
    """`adacot stage distillationjob`: the pod entry point, on the `stage` group of adacot.cli.grade."""
    from adacot.cli.common import STAGE_OUT, STAGE_SPEC
    from adacot.cli.grade import stage

    @stage.command("distillationjob")
    @STAGE_SPEC
    @click.option("--name", default=None, help="Which DistillationJob of the file (when it holds several).")
    @_BANK
    @_EVAL
    @_SHARD
    @STAGE_OUT
    def stage_distillationjob(
        spec_path: Path,
        name: str | None,
        bank: Path,
        eval_grading: Path | None,
        shard: str | None,
        out: Path | None,
    ) -> None:
        """Distil this pod's shard; the shard that finds every shard done merges the artifact."""
        from adacot.api.distillation_job import DistillationJob
        from adacot.cli.common import output_dir, pick_resource

        job = pick_resource(spec_path, DistillationJob, name)
        _run_distill(job, output_dir(out), bank, eval_grading, shard, bar=False)


_attach_stage()
