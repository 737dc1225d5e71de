"""`adacot docs`: write docs/reference.md generated from adacot/api, or check it (--check, CI).

Registered by adacot/cli/main.py; run by `make docs` and, with --check, by `make test` next to
`adacot crds --check`. The work is in `adacot.api.codegen.docs`; this module only writes and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from adacot.api.codegen import docs as docgen
from adacot.api.codegen.schema_k8s import SchemaError

_DIFF_LINES = 40  # enough to see what changed without flooding a CI log


@click.command("docs")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs/reference.md"), show_default=True,
              help="The generated resource reference.")  # fmt: skip
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the file differs from the models.")
def docs(out_file: Path, check: bool) -> None:
    """Generate the field-by-field resource reference from the resource models."""
    try:
        text = docgen.generate()
    except SchemaError as exc:
        raise click.ClickException(f"cannot generate the reference: {exc}") from exc
    changes = docgen.diff(out_file, text)
    if check:
        _exit_on_drift(changes, out_file)
        return
    if changes is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
    click.echo(f"{out_file}: {'unchanged' if changes is None else 'written'}")


def _exit_on_drift(changes: str | None, out_file: Path) -> None:
    if changes is None:
        click.echo(f"{out_file}: the reference is up to date")
        return
    if not out_file.is_file():
        click.echo(f"missing: {out_file}", err=True)
    else:
        lines = changes.splitlines()
        click.echo(f"differs: {out_file}", err=True)
        click.echo("\n".join(lines[:_DIFF_LINES]), err=True)
        if len(lines) > _DIFF_LINES:
            click.echo(f"  ... {len(lines) - _DIFF_LINES} more diff lines", err=True)
    click.echo(f"{out_file} is out of date with adacot/api: run `adacot docs --out {out_file}` and commit "
               "the result.", err=True)  # fmt: skip
    raise click.exceptions.Exit(1)
