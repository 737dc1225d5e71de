"""`adacot sample`: draw N questions from a difficulty bank by a target level distribution.

Writes an artifact of BankEntry rows (data/, MANIFEST.json whose metrics hold target vs achieved shares
and the shortfall moves, summary.json, _SUCCESS), then prints a table of target vs achieved. The
distribution flags are validated through the same pydantic models a DistillationJob YAML uses, before
the bank is read; sampling errors (empty bank, N too large, a short level under --shortfall fail, fewer
than N questions at the levels with a share: an excluded level such as level 0 under --exclude-easy
never makes up the difference) become one-line errors with exit code 1, before anything is written.
A DistillationJob samples the same way inside its pipeline (adacot.stages.sample); this command is
for looking at a sample before paying a teacher for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from adacot.artifacts.manifest import Manifest
from adacot.artifacts.rows import BankEntry
from adacot.artifacts.store import ArtifactDir, read_records
from adacot.artifacts.summary import read_summary, write_summary
from adacot.cli.common import input_errors
from adacot.cli.options import distribution_spec
from adacot.stages.distribution import LEVELS, Distribution, from_grading_summary, resolve
from adacot.stages.sample import BalanceBy, SampleResult, Shortfall, sample

RECORDS_PER_FILE = 10_000


def _distribution(
    prior: str | None, grading: Path | None, table: str | None, easy_weight: float, exclude_easy: bool
) -> Distribution:
    chosen = [
        flag for flag, value in (("--prior", prior), ("--from-grading", grading), ("--table", table)) if value
    ]
    if len(chosen) != 1:
        raise click.UsageError(f"give exactly one of --prior, --from-grading, --table (got {len(chosen)})")
    with input_errors():
        if grading is not None:
            return from_grading_summary(read_summary(grading), exclude_easy=exclude_easy)
        return resolve(distribution_spec(prior, table, easy_weight, exclude_easy))


def write_sample(out: Path, result: SampleResult, name: str, spec: dict[str, Any]) -> Manifest:
    """The sample as an artifact: BankEntry shards, summary.json, MANIFEST.json (metrics: the report)."""
    artifact = ArtifactDir(out).prepare()
    entries = list(result.entries)
    for number, start in enumerate(range(0, len(entries), RECORDS_PER_FILE)):
        artifact.write_shard(f"part-{number:05d}.jsonl", entries[start : start + RECORDS_PER_FILE], BankEntry)
    report = result.as_dict()
    write_summary(artifact.root, report)
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
@click.option(
    "--exclude-easy", is_flag=True, help="Give level 0 no share: it never receives draws, even to keep N."
)
@click.option(
    "--shortfall",
    type=click.Choice(["redistribute", "fail"]),
    default="redistribute",
    show_default=True,
    help="A level with too few questions: move its deficit to the nearest levels with a share, or fail.",
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
    with input_errors():
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
    click.echo(format_table(result))
    click.echo(f"wrote {len(result.entries)} questions to {out}")
