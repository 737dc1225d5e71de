"""Run the method experiment: train the models, grade, distil every arm and seed, fine-tune, collect.

Callers: benchmarks/method.py (the one command; it writes the results and the figure). Steps:

1. Models (WORKDIR/models, reused when trained with the same plan): the student (partial results), a
   stronger student (same style, trained longer; arm C), the teacher (R1-style steps) and the
   PRM-Grader (adacot.demo.prm). Two processes train at once, one torch thread each.
2. Grading through `adacot run` (the local runner) on grading.yaml: the PRM runs, the pass-rate runs
   and the strong student's eval run (adacot.demo.arms). Arm C's table is the strong student's eval
   levels on this student's cut points.
3. Distillation of every arm and seed through the runner, with the teacher behind vLLM's OpenAI server.
4. SFT + evaluation of every job as `adacot run FILE --only NAME` subprocesses, two at a time (one
   torch thread each): the same stage function the cluster runs, so nothing here is special-cased.

`split="eval"` evaluates every SFT on the eval set instead of the test set (SFTJobs named -sft-eval):
settings are chosen on that, never on the test set. Determinism: fixed seeds, one torch thread per
process and a fixed worker layout; the A/seed-0 job is fine-tuned twice to show it (`rerun`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adacot import runner
from adacot.api.common import ModelSpec
from adacot.api.distillation_job import DistillationJob, TeacherServer
from adacot.api.generation import Endpoint, VllmOptions
from adacot.api.sft_job import SFTJob
from adacot.artifacts.rows import GradedQuestion
from adacot.artifacts.store import read_records
from adacot.artifacts.summary import read_summary
from adacot.demo import arms, spec
from adacot.demo.arms import ExperimentSize, Models
from adacot.demo.pretrain import in_processes
from adacot.runner import console

Echo = Callable[[str], None]


def run_experiment(
    workdir: Path, size: ExperimentSize, *, chosen: Sequence[str], split: str = "test", echo: Echo = print
) -> dict[str, Any]:
    """Everything up to the per-job figures (benchmarks/method.py turns them into the results)."""
    project, runs = workdir / "project", workdir / "runs"
    questions = spec.write_questions(project, size.demo)
    echo("[1/4] training the student, the stronger student, the teacher and the PRM")
    models = train_models(workdir / "models", size, spec.question_ids(questions))
    echo("[2/4] grading (PRM, pass rate, the stronger student) through the local runner")
    grading = arms.grading_documents(project, size, models)
    _run_all(_write(project / "grading.yaml", grading), runs)
    strong_table = strong_student_table(runs)
    port = _free_port()
    endpoint = Endpoint(
        url=f"http://127.0.0.1:{port}/v1", model="teacher", concurrency=16, timeout_seconds=300
    )
    test = "test.jsonl" if split == "test" else "eval.jsonl"
    jobs = arms.arm_documents(size, endpoint, chosen, strong_table, test=test, suffix=_suffix(split))
    rerun = arms.rerun_document(size, chosen[0], size.seeds[0], test=test, suffix=_suffix(split))
    file = _write(project / f"method-{split}.yaml", [*grading, *jobs, rerun])
    stages = runner.plan(file, runs)
    echo("[3/4] distilling every arm and seed (teacher behind vLLM's OpenAI server)")
    _distil(stages, models.teacher, port, workdir / "teacher-server.log")
    echo("[4/4] fine-tuning and evaluating every job, two at a time")
    sft = [s for s in stages if isinstance(s.resource, SFTJob)]
    failed = _fine_tune(file, runs, sft, echo)
    return collect(runs, stages, models, strong_table, failed)


def _suffix(split: str) -> str:
    return "-sft" if split == "test" else "-sft-eval"


def _write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(spec.dump(docs))
    return path


def _run_all(file: Path, runs: Path) -> None:
    _all_done(console.execute_shown(runner.plan(file, runs), progress=True), "grading")


def _all_done(results: list[runner.StageResult], what: str) -> None:
    """Raise naming every stage that neither finished nor was already complete."""
    bad = [
        f"{r.stage.label}: {r.reason}"
        for r in results
        if r.status not in (runner.DONE, runner.SKIPPED_COMPLETE)
    ]
    if bad:
        raise RuntimeError(f"{what} failed: " + "; ".join(bad))


# ------------------------------------------------------------------------------------------------ models


def train_models(models: Path, size: ExperimentSize, avoid: set[str]) -> Models:
    """The four models, trained by two spawned processes (one torch thread each) or reused."""
    found = Models(models / "student", models / "strong", models / "teacher", models / "prm")
    in_processes([(_train_students, (found, size, sorted(avoid))), (_train_teacher, (found, size))])
    return found


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _train_students(found: Models, size: ExperimentSize, avoid: list[str]) -> None:
    from adacot.demo.pretrain import train_model
    from adacot.demo.prm import train_prm
    from adacot.demo.synthetic import partial_answer

    _one_thread()
    train_model(found.student, size.demo.student, partial_answer, label="student", log=print)
    train_prm(found.prm, size.demo.prm_plan(), found.student, avoid=set(avoid), log=print)
    train_model(found.strong, size.strong, partial_answer, label="stronger student", log=print)


def _train_teacher(found: Models, size: ExperimentSize) -> None:
    from adacot.demo.pretrain import train_model
    from adacot.demo.synthetic import step_answer

    _one_thread()
    train_model(found.teacher, size.demo.teacher, step_answer, label="teacher", log=print)


# ----------------------------------------------------------------------------------------- the arms


def strong_student_table(runs: Path) -> dict[str, float]:
    """Arm C's target: the stronger student's eval levels, placed by this student's eval cut points."""
    cuts = read_summary(runs / "default" / "GradingRun" / "eval")["cut_points"]
    rows = read_records(runs / "default" / "GradingRun" / "eval-strong", GradedQuestion)
    return arms.table_from_counts(arms.levels_on_scale(rows, cuts))


def _distil(stages: list[runner.Stage], teacher: Path, port: int, log: Path) -> None:
    from adacot.backends.teacher_server import running_teacher

    jobs = [s for s in stages if isinstance(s.resource, DistillationJob)]
    if all(runner.stage_complete(s) for s in jobs):
        return
    server = TeacherServer(
        model=ModelSpec(path=str(teacher), max_model_len=spec.MAX_MODEL_LEN),
        vllm=VllmOptions(extra_args=["--kv-cache-memory-bytes", spec.KV_CACHE_BYTES]),
        port=port,
        startup_timeout_seconds=600,
    )
    with running_teacher(server, log, concurrency=16):
        results = console.execute_shown(jobs, progress=True, all_stages=stages)
    _all_done(results, "distillation")


def _fine_tune(file: Path, runs: Path, stages: list[runner.Stage], echo: Echo) -> dict[str, str]:
    """Each SFTJob as its own `adacot run --only` process, two at a time; returns failures by name."""
    adacot = str(Path(sys.executable).parent / "adacot")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo = [s for s in stages if not runner.stage_complete(s)]

    def one(stage: runner.Stage) -> tuple[str, int, str]:
        name = stage.resource.metadata.name
        command = [adacot, "run", str(file), "--only", name, "--workdir", str(runs), "--no-progress"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        (runs / f"{name}.log").write_text(done.stdout + done.stderr)
        return name, done.returncode, done.stderr[-2000:]

    failed = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, code, tail in pool.map(one, todo):
            echo(f"  {name}: {'done' if code == 0 else f'FAILED (exit {code})'}")
            if code != 0:
                failed[name] = tail
    return failed


# ------------------------------------------------------------------------------------------- results


def collect(
    runs: Path, stages: list[runner.Stage], models: Models, strong: dict[str, float], failed: dict[str, str]
) -> dict[str, Any]:
    """Every figure the results need, read from the stages' summaries and the models' reports."""
    summaries = {s.resource.metadata.name: _summary(s.out_dir) for s in stages}
    prm = json.loads((models.prm / "prm.json").read_text())
    return {
        "summaries": summaries,
        "prm": {k: v for k, v in prm.items() if k != "losses"},
        "strong_table": strong,
        "failed": failed,
        "pretrain": {
            name: {
                k: v
                for k, v in _summary_file(getattr(models, name) / "pretrain.json").items()
                if k != "losses"
            }
            for name in ("student", "strong", "teacher")
        },
    }


def _summary(out_dir: Path) -> dict[str, Any]:
    try:
        return read_summary(out_dir)
    except (OSError, ValueError):
        return {}


def _summary_file(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
