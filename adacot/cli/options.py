"""Flags that more than one command takes, and how their text becomes values.

Callers: the `adacot stage <kind>` commands (adacot.cli.stage) and the human commands that take the same
inputs (grade, bank, sample, distill, sft, run). Each option is defined once so a stage command and its
human twin cannot drift apart in spelling or help text. Parse errors are usage errors (exit code 2)
that quote the flag and the text given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from adacot.api.distillation_job import DistributionSpec
from adacot.api.stage_pod import (
    BANK_FLAG,
    DATASET_FLAG,
    EVAL_GRADING_FLAG,
    NPROC_ENV,
    OUTPUT_DIR_ENV,
    RUN_FLAG,
)
from adacot.artifacts.shards import ShardSpec
from adacot.cli.common import validated

STAGE_SPEC = click.option(
    "--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
    help="The resource YAML (the ConfigMap the operator mounts).",
)  # fmt: skip
"""`--spec` of every `adacot stage <kind>` command."""
STAGE_OUT = click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=f"Output directory (default ${OUTPUT_DIR_ENV}).",
)  # fmt: skip
"""`--out` of every `adacot stage <kind>` command; resolve it with `adacot.cli.common.output_dir`."""
STAGE_SHARD = click.option(
    "--shard", default=None, help="i/N; default JOB_COMPLETION_INDEX of spec.shards, else all."
)
"""`--shard` of the sharded stages (and of `adacot distill`); resolve it with `shard`."""
RUNS = click.option(RUN_FLAG, "runs", multiple=True, help="NAME=DIR: where GradingRun NAME wrote its output.")
"""`--run` of `adacot bank` and `adacot stage difficultybank`; resolve it with `named_dirs`."""

BANK_DIR = click.option(
    BANK_FLAG, "bank_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
    help="The DifficultyBank artifact directory (what bankRef names).",
)  # fmt: skip
"""The bank a DistillationJob samples (`adacot distill`, `adacot stage distillationjob`)."""
EVAL_GRADING = click.option(
    EVAL_GRADING_FLAG, "eval_grading", default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The GradingRun artifact on an evaluation set (P_eval; what fromGradingRun names).",
)  # fmt: skip
"""The P_eval input of a DistillationJob."""

SFT_DATASET = click.option(
    DATASET_FLAG, "dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
    help="Output directory of the DistillationJob the spec references.",
)  # fmt: skip
"""The training data of an SFTJob (`adacot sft --spec`, `adacot stage sftjob`)."""
SFT_MODEL = click.option("--model", default=None, help="Base model directory (overrides spec.model).")
"""The base model of an SFTJob."""
SFT_NPROC = click.option(
    "--nproc-per-node", type=click.IntRange(1), default=None,
    help=f"Training processes per node (default ${NPROC_ENV}, else resources.gpus).",
)  # fmt: skip
"""Training processes per node of an SFTJob."""


def shard(text: str | None, shards: int) -> ShardSpec | None:
    """--shard i/N, else this pod's JOB_COMPLETION_INDEX of `shards`, else None (everything)."""
    try:
        if text is not None:
            return ShardSpec.parse(text)
        if os.environ.get("JOB_COMPLETION_INDEX"):
            return ShardSpec.from_env(shards)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    return None


def named_dirs(flag: str, values: Sequence[str]) -> dict[str, Path]:
    """NAME=DIR values of a repeatable flag (--run, --claim) as {NAME: DIR}."""
    dirs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.UsageError(f"{flag} {value!r}: expected NAME=DIR")
        dirs[name] = Path(path)
    return dirs


def distribution_spec(
    prior: str | None, table: str | None, easy_weight: float, exclude_easy: bool
) -> DistributionSpec:
    """The DistributionSpec of --prior / --table / --easy-weight / --exclude-easy (sample, distill)."""
    data: dict[str, Any] = {"excludeEasy": exclude_easy}
    if prior is not None:
        data["prior"] = {"weights": _numbers(prior, "--prior"), "easyWeight": easy_weight}
    if table is not None:
        data["table"] = _table(table)
    return validated(DistributionSpec, data, "distribution")


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
