"""`adacot bank`: merge grading outputs of one model into a difficulty bank, for a person at a terminal.

Flags (or a YAML DifficultyBank via --spec) are validated into the DifficultyBank model before any file is
read; the summary is printed as JSON. `run_resource` is also what `adacot stage difficultybank`
(adacot.cli.stage) runs in the operator's pods. `--run NAME=DIR` says where a GradingRun that the spec
names by reference wrote its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adacot.api.difficulty_bank import DifficultyBank
from adacot.cli import options
from adacot.cli.common import pick_resource, resource_from_flags, run_pipeline


def run_resource(resource: DifficultyBank, out: Path, runs: dict[str, Path]) -> None:
    """Build the bank into `out` from its sources (`runs`: output directories of referenced runs)."""
    from adacot.pipelines.difficulty_bank import run_difficulty_bank

    run_pipeline(resource, lambda _progress: run_difficulty_bank(resource, out, runs=runs))


@click.command("bank")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file holding a DifficultyBank.",
)
@click.option("--source", "sources", multiple=True, help="A grading output directory or graded JSONL file.")
@options.RUNS
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
@click.option(
    "--cut-points-from",
    default=None,
    metavar="NAME",
    help="Re-level unsolved questions with the cut points GradingRun NAME recorded (give --run NAME=DIR; "
    "it adds no questions): levels.cutPointsFrom.",
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
    cut_points_from: str | None,
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
        if cut_points_from:
            spec["levels"] = {"cutPointsFrom": {"name": cut_points_from}}
        if benchmarks:
            spec["decontamination"] = {
                "benchmarks": [{"path": b} for b in benchmarks],
                "ngram": ngram,
                "threshold": threshold,
            }
        resource = resource_from_flags(DifficultyBank, name, spec)
    run_resource(resource, out, options.named_dirs("--run", runs))
