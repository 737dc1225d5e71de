"""`adacot crds`: write the CRDs generated from adacot/api into crds/, or check them (--check, CI).

Registered by adacot/cli/main.py. The work is in `adacot.api.codegen.crds`; this module only prints.
Only `adacot.dev_*.yaml` files in the output directory are touched; crds/samples/ is never read.
"""

from __future__ import annotations

from pathlib import Path

import click

from adacot.api.codegen import crds as crdgen
from adacot.api.codegen.schema_k8s import SchemaError

_DIFF_LINES = 40  # enough to see what changed without flooding a CI log


@click.command("crds")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("crds"),
              show_default=True, help="Directory of the generated CRD files.")  # fmt: skip
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the files differ from the models.")
def crds(out_dir: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions from the resource models."""
    from adacot.api.resource import GROUP

    try:
        files = crdgen.generate()
    except SchemaError as exc:
        raise click.ClickException(f"cannot generate the CRDs: {exc}") from exc
    if check:
        _exit_on_drift(crdgen.compare(out_dir, files, GROUP), out_dir)
        return
    drift = crdgen.write(out_dir, files, GROUP)
    for name in sorted(files):
        state = "written" if name in drift.missing or name in drift.changed else "unchanged"
        click.echo(f"{out_dir / name}: {state}")
    for name in drift.extra:
        click.echo(f"{out_dir / name}: removed (no such kind any more)")


def _exit_on_drift(drift: crdgen.Drift, out_dir: Path) -> None:
    if drift.clean:
        click.echo(f"{out_dir}: CRDs are up to date")
        return
    for name in drift.missing:
        click.echo(f"missing: {out_dir / name}", err=True)
    for name in drift.extra:
        click.echo(f"extra:   {out_dir / name} (no resource kind generates it)", err=True)
    for name, diff in drift.changed.items():
        click.echo(f"differs: {out_dir / name}", err=True)
        lines = diff.splitlines()
        click.echo("\n".join(lines[:_DIFF_LINES]), err=True)
        if len(lines) > _DIFF_LINES:
            click.echo(f"  ... {len(lines) - _DIFF_LINES} more diff lines", err=True)
    click.echo(f"The CRDs in {out_dir} are out of date with adacot/api: run `adacot crds --out {out_dir}` "
               "and commit the result.", err=True)  # fmt: skip
    raise click.exceptions.Exit(1)
