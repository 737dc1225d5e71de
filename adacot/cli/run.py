"""`adacot run FILE.yaml`: run the resources of a multi-document YAML on this machine (the local runner).

Validates the whole file before the first stage starts (exit code 2 with every problem, one per line),
shows a line and a progress bar per stage on stderr (adacot.runner.console), prints the table of stages on
stdout, and exits 1 when a stage failed. Relative paths in the YAML resolve against the file's directory;
`--claim NAME=DIR` maps a PersistentVolumeClaim named in a spec to a local directory (see adacot.runner).
The same YAML applied to a cluster runs through the operator instead; this is the laptop path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from adacot import runner
from adacot.cli.options import named_dirs
from adacot.runner import console, table


def _claims(values: Sequence[str]) -> dict[str, Path]:
    claims = named_dirs("--claim", values)
    for value in values:
        directory = value.partition("=")[2]
        if not Path(directory).is_dir():
            raise click.UsageError(f"--claim {value!r}: {directory} is not a directory")
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
