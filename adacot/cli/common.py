"""What every stage command shares: picking the resource out of a spec file, and the pod's output dir.

Callers: adacot.cli.grade, adacot.cli.distill and adacot.cli.sft (the `stage <kind>` pod entry points
and the `--spec` forms of the human commands).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import click

from adacot.api.loader import ResourceError, load_resources
from adacot.api.resource import Resource

OUTPUT_ENV = "ADACOT_OUTPUT_DIR"
"""Where a pod writes its artifact when no --out is given (the operator sets it to the volume path)."""

R = TypeVar("R", bound=Resource[Any, Any])

STAGE_SPEC = click.option(
    "--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
    help="The resource YAML (the ConfigMap the operator mounts).",
)  # fmt: skip
"""`--spec` of every `adacot stage <kind>` command."""
STAGE_OUT = click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=f"Output directory (default ${OUTPUT_ENV}).",
)  # fmt: skip
"""`--out` of every `adacot stage <kind>` command; resolve it with `output_dir`."""


def pick_resource(path: Path, kind: type[R], name: str | None) -> R:
    """The one resource of `kind` in a YAML file (or the one called `name`); a usage error otherwise."""
    try:
        found = [r for r in load_resources(path) if isinstance(r, kind)]
    except ResourceError as error:
        raise click.UsageError(str(error)) from None
    if name is not None:
        found = [r for r in found if r.metadata.name == name]
    if len(found) != 1:
        what = f"{kind.KIND} named {name!r}" if name else f"exactly one {kind.KIND}"
        raise click.UsageError(f"{path}: expected {what}, found {len(found)} (use --name to choose)")
    return found[0]


def output_dir(out: Path | None) -> Path:
    """--out, else $ADACOT_OUTPUT_DIR."""
    if out is not None:
        return out
    if os.environ.get(OUTPUT_ENV):
        return Path(os.environ[OUTPUT_ENV])
    raise click.UsageError(f"give --out DIR (or set ${OUTPUT_ENV})")
