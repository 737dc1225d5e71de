"""Entry point of the `adacot` command: registers the command groups."""

from __future__ import annotations

import click

from adacot import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adacot")
def main() -> None:
    """adacot: model-adaptive chain-of-thought distillation."""


def _register() -> None:
    from adacot.cli import crds, demo, verify

    main.add_command(crds.crds)
    main.add_command(demo.demo)
    main.add_command(verify.verify)
    from adacot.cli.grade import bank, grade, stage

    for command in (grade, bank, stage):
        main.add_command(command)


_register()
