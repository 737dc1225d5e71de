"""The code chain in miniature: small Python functions graded by their tests, distilled and fine-tuned.

Callers: tests/integration/test_code_chain.py, and `python -m adacot.demo.code_chain DIR` (writes the
project and prints the command). The same four kinds as the math demo, on code (adacot.demo.code_task):

    pool (GradingRun, task code, bankRef) ──▶ bank ──▶ distil (DistillationJob, fromGradingRun: eval,
    eval (GradingRun: P_eval) ─────────────────────────┘      teacher.server: vLLM started by the stage)
    distil ──▶ distil-sft (SFTJob, evaluation on test.jsonl, compareBase)

Grading: k samples at temperature 0.7, each run against its five tests in the sandboxed verifier; a
question is solved (level 0) when every sample passes every test; an unsolved one is scored by the share
of tests its wrong samples pass (mean over samples), the test-pass levels: the fixed bins put a share of
0.8 or more at level 1 and under 0.2 at level 5. No PRM: a program's tests say more about how close it
came than a math PRM's view of its lines.

Pure except `write_questions` and `train_models` (files and two spawned training processes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adacot.demo import spec
from adacot.demo.code_task import funcs
from adacot.demo.pretrain import PretrainPlan, in_processes

STUDENT_TOKENS = 48  # the student's single expression; the longest fits with room
TEACHER_TOKENS = 160  # <think> with one line per operation, then one statement per operation
CODE_GRADER = {"method": "prm", "solvedRule": "threshold", "solvedThreshold": 1.0}  # test-pass levels


QUICK = spec.DemoSize(
    pool=64, eval=32, test=32, distill=24, k=4, sft_epochs=30,
    student=PretrainPlan(steps=150, seed=1, learning_rate=1e-3),
    teacher=PretrainPlan(steps=300, seed=2, layers=2),
    grading_engine="transformers",
)  # fmt: skip


def write_questions(root: Path, size: spec.DemoSize, seed: int = 0) -> dict[str, Path]:
    """pool.jsonl, eval.jsonl and test.jsonl under `root`: disjoint functions of 1 to 4 operations."""
    items = [f.row() for f in funcs(size.pool + size.eval + size.test, seed)]
    return spec.write_sets(root, items, size.pool, size.eval)


def train_models(models: Path, size: spec.DemoSize) -> tuple[Path, Path]:
    """(student, teacher), trained at once by two spawned processes (one torch thread each) or reused."""
    student, teacher = models / "student", models / "teacher"
    in_processes([(_train, (student, size.student, "student")), (_train, (teacher, size.teacher, "teacher"))])
    return student, teacher


def _train(directory: Path, plan: PretrainPlan, style: str) -> None:
    import torch

    from adacot.demo.code_task import training_task
    from adacot.demo.pretrain import train

    torch.set_num_threads(1)
    train(directory, plan, training_task(style), label=f"code {style}", log=print)


def documents(
    root: Path, size: spec.DemoSize, student: Path, teacher: Path, *, port: int
) -> list[dict[str, Any]]:
    """The five resources, paths relative to `root` (where the YAML is written); the teacher's vLLM
    server listens on `port`."""
    model = {"path": os.path.relpath(student, root), "maxModelLen": spec.MAX_MODEL_LEN}

    def grading(path: str) -> dict[str, Any]:
        return spec.grading(size, path, model, CODE_GRADER, task="code", max_tokens=STUDENT_TOKENS)

    server = {
        "model": {"path": os.path.relpath(teacher, root), "maxModelLen": spec.MAX_MODEL_LEN},
        "vllm": {"extraArgs": ["--kv-cache-memory-bytes", spec.KV_CACHE_BYTES]},
        "port": port,
        "startupTimeoutSeconds": 600,
    }
    distil = spec.distil(
        size, server, {"fromGradingRun": {"name": "eval"}}, bank="bank", max_tokens=TEACHER_TOKENS
    )
    sft = spec.sft(size, "distil", compare_base=True, task="code", max_tokens=TEACHER_TOKENS)
    return [
        spec.doc("GradingRun", "pool", {**grading("pool.jsonl"), "bankRef": {"name": "bank"}}),
        spec.doc("GradingRun", "eval", grading("eval.jsonl")),
        spec.doc("DifficultyBank", "bank", {}),
        spec.doc("DistillationJob", "distil", distil),
        spec.doc("SFTJob", "distil-sft", sft),
    ]


def write_project(root: Path, size: spec.DemoSize = QUICK, *, port: int = 8000) -> Path:
    """Questions, trained models and code.yaml under `root`; returns the YAML's path."""
    write_questions(root, size)
    student, teacher = train_models(root / "models", size)
    path = root / "code.yaml"
    path.write_text(spec.dump(documents(root, size, student, teacher, port=port)))
    return path


if __name__ == "__main__":
    import sys

    written = write_project(Path(sys.argv[1]))
    print(f"adacot run {written} --workdir {written.parent / 'runs'}")
