"""`adacot demo`: the README's main job (see adacot.demo for what it runs today)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--workdir",
    default=".adacot/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo writes its artifacts.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Verifier workers.")
def demo(workdir: Path, workers: int) -> None:
    """Run the end-to-end demo on bundled data."""
    from adacot.demo import run_demo

    run_demo(workdir, workers=workers, echo=click.echo)
    click.echo(f"artifacts: {workdir / 'verified'}")
