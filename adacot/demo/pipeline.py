"""`run_demo`: the method end to end on one CPU machine, with models trained on the spot.

Callers: adacot.cli.demo and tests. Steps, each shown as it happens:

1. Train (or reuse from WORKDIR/models) the student and the teacher on the synthetic sums
   (adacot.demo.pretrain), then the PRM-Grader on the student's labelled steps (adacot.demo.prm).
2. Write the question files and distill.yaml under WORKDIR/project (adacot.demo.spec).
3. Serve the teacher with vLLM's OpenAI-compatible server (`vllm serve`'s equivalent, through
   adacot.backends.teacher_server) -- only when a DistillationJob still has work.
4. Run the local runner over distill.yaml (adacot.runner: plan, execute; artifacts in WORKDIR/runs),
   with a line and a progress bar per stage and the runner's table at the end.
5. Write the report (adacot.demo.report) to WORKDIR/report and print its summary.

A rerun reuses the trained models and skips complete stages (the runner's rule); `fresh=True` starts
over. Limits: one teacher server on a free local port; the runner's failures are reported, not raised,
so the report says which stages are missing.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from adacot import runner
from adacot.api.common import ModelSpec
from adacot.api.distillation_job import DistillationJob, TeacherServer
from adacot.api.generation import Endpoint, VllmOptions
from adacot.demo import spec
from adacot.demo.pretrain import train_model
from adacot.demo.prm import train_prm
from adacot.demo.synthetic import partial_answer, step_answer
from adacot.runner import console, table

Echo = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    """Where everything went, and the runner's results."""

    workdir: Path
    spec_file: Path
    report: Path
    results: list[runner.StageResult]

    @property
    def ok(self) -> bool:
        return all(r.status in (runner.DONE, runner.SKIPPED_COMPLETE) for r in self.results)


def run_demo(
    workdir: Path,
    *,
    quick: bool = False,
    fresh: bool = False,
    progress: bool = True,
    threads: int = 1,
    echo: Echo = print,
) -> DemoResult:
    """Run the demo into `workdir` (see the module docstring).

    `threads` is torch's intra-op thread count in this process (training, SFT, transformers
    generation). One is the default because on two shared cores a training step of the tiny model took
    0.36 s with one thread and 2.5 s with two (threads spinning while the other core is busy).
    """
    import torch

    from adacot.demo.report import write_report

    torch.set_num_threads(threads)

    size = spec.QUICK if quick else spec.FULL
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    claim_workdir(workdir, "quick" if quick else "full")
    models, project = workdir / "models", workdir / "project"
    echo(f"[1/5] training the student, the teacher and the PRM ({'quick' if quick else 'full'} size)")
    student = train_model(models / "student", size.student, partial_answer, label="student", log=echo)
    teacher = train_model(models / "teacher", size.teacher, step_answer, label="teacher", log=echo)
    echo(f"[2/5] writing questions and distill.yaml to {project}")
    questions = spec.write_questions(project, size)
    prm = train_prm(models / "prm", size.prm_plan(), student, avoid=spec.question_ids(questions), log=echo)
    port = _free_port()
    endpoint = Endpoint(
        url=f"http://127.0.0.1:{port}/v1", model="teacher", concurrency=16, timeout_seconds=300
    )
    spec_file = project / "distill.yaml"
    spec_file.write_text(spec.dump(spec.documents(project, size, student, prm, endpoint)))
    stages = runner.plan(spec_file, workdir / "runs")
    with _teacher(stages, teacher, port, workdir / "teacher-server.log", echo):
        echo("[4/5] running the pipeline (adacot run distill.yaml)")
        results = console.execute_shown(stages, progress=progress)
    echo(table.table(results))
    for line in table.failures(results):
        echo(line)
    echo(f"[5/5] writing the report to {workdir / 'report'}")
    report = write_report(workdir, size, results, echo=echo)
    return DemoResult(workdir=workdir, spec_file=spec_file, report=report, results=results)


def prepare_demo(
    workdir: Path,
    *,
    quick: bool = False,
    student_steps: int | None = None,
    teacher_steps: int | None = None,
    threads: int = 1,
    echo: Echo = print,
) -> dict[str, Path]:
    """Step 1 (student and teacher only, no PRM) and the question files of step 2, nothing else: the
    inputs of a chain run elsewhere, e.g. written by a Job onto a cluster's volume
    (docs/quickstart-cluster.md). WORKDIR/models/{student,teacher}, WORKDIR/project/{pool,eval,test}.jsonl;
    `student_steps` / `teacher_steps` replace the size's training steps (fewer: weaker models, sooner).
    Returns the written paths by name."""
    import torch

    torch.set_num_threads(threads)
    size = spec.QUICK if quick else spec.FULL
    student_plan = replace(size.student, steps=student_steps or size.student.steps)
    teacher_plan = replace(size.teacher, steps=teacher_steps or size.teacher.steps)
    models = workdir / "models"
    echo(f"training the student and the teacher ({'quick' if quick else 'full'} size) into {models}")
    student = train_model(models / "student", student_plan, partial_answer, label="student", log=echo)
    teacher = train_model(models / "teacher", teacher_plan, step_answer, label="teacher", log=echo)
    questions = spec.write_questions(workdir / "project", size)
    echo(f"questions: {', '.join(str(p) for p in questions.values())}")
    return {"student": student, "teacher": teacher, **questions}


def claim_workdir(workdir: Path, size: str) -> None:
    """Mark `workdir` as holding a demo of this size; refuse one of the other size, whose finished stages
    the runner would otherwise skip and report next to models of this size."""
    marker = workdir / "demo-size.txt"
    if marker.is_file() and (found := marker.read_text().strip()) != size:
        raise DemoWorkdirError(
            f"{workdir} holds a {found} demo; use --fresh to replace it, or another --workdir"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(size + "\n")


class DemoWorkdirError(ValueError):
    """The work directory holds a demo of another size."""


def _teacher(
    stages: list[runner.Stage], model: Path, port: int, log: Path, echo: Echo
) -> AbstractContextManager[object]:
    """The teacher server while any DistillationJob has work left; nothing when all are complete."""
    from adacot.backends.teacher_server import running_teacher

    pending = [s for s in stages if isinstance(s.resource, DistillationJob) and not runner.stage_complete(s)]
    if not pending:
        echo("[3/5] the distillation stages are complete: no teacher server needed")
        return nullcontext()
    echo(f"[3/5] serving the teacher with vLLM on 127.0.0.1:{port} (log: {log})")
    server = TeacherServer(
        model=ModelSpec(path=str(model), max_model_len=spec.MAX_MODEL_LEN),
        vllm=VllmOptions(extra_args=["--kv-cache-memory-bytes", spec.KV_CACHE_BYTES]),
        port=port,
        startup_timeout_seconds=600,
    )
    return running_teacher(server, log, concurrency=16)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
