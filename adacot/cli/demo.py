"""`adacot demo` (what `make demo` runs): the whole method on this machine with models trained on the spot.

Trains a student and a teacher on synthetic sums, serves the teacher with vLLM, writes distill.yaml and
runs it with the local runner (grade, bank, distil adaptive + ablation, SFT, evaluate), then writes the
report. Steps live in adacot.demo.pipeline; exit code 1 when a stage failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--workdir",
    default=".adacot/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Models, distill.yaml, stage artifacts and the report go here; a rerun reuses them.",
)
@click.option("--quick", is_flag=True, help="A small version (tiny training, few questions) for tests.")
@click.option("--fresh", is_flag=True, help="Delete the workdir first (retrain, rerun every stage).")
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="torch threads in the demo process (one is fastest on a shared machine).",
)
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
@click.option(
    "--prepare-only",
    is_flag=True,
    help="Only train the student and the teacher and write the question files (WORKDIR/models, "
    "WORKDIR/project): the inputs of a chain run on a cluster (docs/quickstart-cluster.md).",
)
@click.option(
    "--student-steps",
    type=click.IntRange(1),
    default=None,
    help="With --prepare-only: train the student this many steps instead of the size's.",
)
@click.option(
    "--teacher-steps",
    type=click.IntRange(1),
    default=None,
    help="With --prepare-only: train the teacher this many steps instead of the size's.",
)
def demo(
    workdir: Path, quick: bool, fresh: bool, threads: int, progress: bool, prepare_only: bool,
    student_steps: int | None, teacher_steps: int | None,
) -> None:  # fmt: skip
    """Train tiny models, distil adaptively and uniformly, fine-tune, evaluate, report."""
    from adacot.backends.teacher_server import TeacherServerError
    from adacot.demo.pipeline import DemoWorkdirError, prepare_demo, run_demo

    if (student_steps or teacher_steps) and not prepare_only:
        raise click.UsageError("--student-steps and --teacher-steps go with --prepare-only")
    if prepare_only:
        steps = {"student_steps": student_steps, "teacher_steps": teacher_steps}
        prepare_demo(workdir, quick=quick, threads=threads, echo=click.echo, **steps)
        return

    try:
        result = run_demo(
            workdir, quick=quick, fresh=fresh, progress=progress, threads=threads, echo=click.echo
        )
    except TeacherServerError as error:  # the server's log tail says why; no traceback needed
        raise click.ClickException(f"the teacher server did not start: {error}") from None
    except DemoWorkdirError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"report: {result.report}")
    if not result.ok:
        sys.exit(1)
