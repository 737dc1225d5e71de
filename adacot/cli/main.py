"""Entry point of the `adacot` command: registers the command groups."""

from __future__ import annotations

import click

from adacot import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adacot")
def main() -> None:
    """adacot: model-adaptive chain-of-thought distillation."""


def _register() -> None:
    from adacot.cli import crds, demo, distill, docs, grade, sft, verify
    from adacot.cli import run as run_cli

    for command in (
        crds.crds,
        docs.docs,
        verify.verify,
        grade.grade,
        grade.bank,
        grade.stage,
        distill.sample_command,
        distill.distill,
        demo.demo,
        sft.sft,
        run_cli.run,
        run_cli.eval_command,
    ):
        main.add_command(command)


_register()
