"""What the commands share on their way from flags or a spec file to a pipeline and back.

Callers: every command module of adacot.cli. `pick_resource` reads a resource out of a YAML file (the
`--spec` forms and the `adacot stage <kind>` pod entry points), `validated` / `resource_from_flags` turn
flags into the same pydantic models (a bad flag is a usage error, exit code 2, before anything loads),
`run_pipeline` runs a stage's pipeline with its progress bar and status reports and prints the summary
(the human commands and the stage commands both go through it), `input_errors` turns bad inputs found
while running into one-line errors with exit code 1 (2 for ValidationFailed: inputs that contradict each
other). Flags shared by several commands are in adacot.cli.options.

Not here: anything kind-specific (which inputs a pipeline takes lives with its command).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from adacot.api.loader import ResourceError, format_path, load_resources
from adacot.api.resource import Resource
from adacot.api.stage_pod import OUTPUT_DIR_ENV, VALIDATION_FAILED_EXIT_CODE, ValidationFailed
from adacot.artifacts.jsonio import ArtifactError
from adacot.progress.meter import ProgressCallback, tqdm_callback
from adacot.progress.publish import published

INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError, ArtifactError)
"""What a stage raises for a bad input (missing files, malformed rows, mixed models, unreadable
artifacts); `input_errors` reports them in one line."""

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Resource[Any, Any])
Summary = dict[str, Any]


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
    if os.environ.get(OUTPUT_DIR_ENV):
        return Path(os.environ[OUTPUT_DIR_ENV])
    raise click.UsageError(f"give --out DIR (or set ${OUTPUT_DIR_ENV})")


def validated(model: type[M], data: dict[str, Any], what: str) -> M:
    """`data` as a `model`; a ValidationError becomes a UsageError ("invalid WHAT: field: problem; ...")
    naming each field the way the YAML spells it."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{format_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors())
        raise click.UsageError(f"invalid {what}: {problems}") from None


def resource_from_flags(kind: type[R], name: str, spec: dict[str, Any]) -> R:
    """A `kind` called `name` with `spec` (camelCase, as in YAML), validated like a spec file."""
    data = {"kind": kind.KIND, "metadata": {"name": name}, "spec": spec}
    return validated(kind, data, f"{kind.KIND} from the flags")


class RejectedInputs(click.ClickException):
    """A ValidationFailed from a stage: a one-line error with VALIDATION_FAILED_EXIT_CODE, so the
    operator fails the Job at once (retrying cannot help) with reason ValidationFailed."""

    exit_code = VALIDATION_FAILED_EXIT_CODE


@contextmanager
def input_errors(*extra: type[Exception]) -> Iterator[None]:
    """INPUT_ERRORS (and `extra`) raised in the block become one-line errors with exit code 1, a
    ValidationFailed (inputs that contradict each other) with exit code 2."""
    try:
        yield
    except ValidationFailed as error:
        raise RejectedInputs(str(error)) from None
    except (*INPUT_ERRORS, *extra) as error:
        raise click.ClickException(str(error)) from None


def run_pipeline(
    resource: Resource[Any, Any],
    pipeline: Callable[[ProgressCallback], Summary],
    *,
    bar: bool = False,
    errors: tuple[type[Exception], ...] = (),
) -> None:
    """Call `pipeline(progress)` and print its summary as JSON.

    `progress` moves a tqdm bar on stderr when `bar` (never in a pod) and feeds the
    pod's progress endpoint when the pod's env asks for one (adacot.progress.publish). A pipeline that
    counts nothing ignores `progress`. Input errors (and `errors`) become one-line errors with exit code 1.
    """
    with (
        tqdm(total=0, unit="q", desc=resource.metadata.name, disable=not bar) as progress_bar,
        published(tqdm_callback(progress_bar)) as progress,
        input_errors(*errors),
    ):
        summary = pipeline(progress)
    click.echo(json.dumps(summary, indent=2))
