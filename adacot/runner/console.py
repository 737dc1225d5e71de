"""What a person sees while the local runner works: a line as each stage starts and a tqdm bar per stage.

Callers: `adacot run` (adacot.cli.run) and `adacot demo` (adacot.demo.pipeline), so both look the same.
Everything goes to stderr; the final table (adacot.runner.table) is the caller's to print.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import click
from tqdm import tqdm

from adacot.progress.meter import ProgressCallback, tqdm_callback
from adacot.runner.execution import ProgressFactory, StageResult, execute
from adacot.runner.planning import Stage


@contextmanager
def bars(enabled: bool) -> Iterator[ProgressFactory]:
    """One tqdm bar per stage on stderr (closed at the end of the run)."""
    with ExitStack() as stack:

        def factory(stage: Stage) -> ProgressCallback | None:
            bar = stack.enter_context(
                tqdm(total=0, unit="q", desc=stage.label, disable=not enabled, file=sys.stderr)
            )
            return tqdm_callback(bar)

        yield factory


def announce(stage: Stage, number: int, total: int) -> None:
    click.echo(f"[{number}/{total}] {stage.label} -> {stage.out_dir}", err=True)


def execute_shown(
    stages: Sequence[Stage], *, progress: bool, force: bool = False, all_stages: Sequence[Stage] = ()
) -> list[StageResult]:
    """`execute` with the announcements and bars on stderr."""
    with bars(progress) as factory:
        return execute(stages, force=force, progress=factory, notify=announce, all_stages=all_stages)
