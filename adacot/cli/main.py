"""Entry point of the `adacot` command: registers one command (or group) per module of adacot.cli.

Each command module imports heavy libraries (torch, vLLM, the pipelines) inside its commands, so
`adacot --help` stays fast. The list below is the whole command line; nothing registers itself.
"""

from __future__ import annotations

import click

from adacot import __version__
from adacot.cli import bank, crds, demo, distill, docs, grade, run, sample, sft, stage, verify
from adacot.cli import eval as eval_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adacot")
def main() -> None:
    """adacot: model-adaptive chain-of-thought distillation."""


for command in (
    crds.crds,
    docs.docs,
    verify.verify,
    grade.grade,
    bank.bank,
    stage.stage,
    sample.sample_command,
    distill.distill,
    demo.demo,
    sft.sft,
    run.run,
    eval_cli.eval_command,
):
    main.add_command(command)
