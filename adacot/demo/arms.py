"""The method experiment's arms and resources: one YAML for `adacot run`, the paper's ablation in miniature.

Callers: adacot.demo.experiment (benchmarks/method.py). Pure: sizes and paths in, documents out, plus
reading the graded records that arm C's table comes from.

Arms, all with the same N, teacher, SFT recipe and test set; the seed changes the sample and the SFT
data order, and every arm runs every seed:

- A: the PRM bank (levels from the PRM-Grader, cut points fitted on the eval grading) sampled to the
  student's own P_eval (`fromGradingRun: eval`) -- the method.
- U: the PRM bank sampled uniformly over levels 0..5.
- B: the pass-rate bank (levels from the share of k samples right: s1, LIMO, open-r1's practice)
  sampled to the pass-rate P_eval.
- C: the PRM bank sampled to the P_eval of a stronger student (trained longer), measured with the
  same PRM and the same cut points -- the paper's "another model's distribution" ablation.
- P: the PRM bank sampled to a P_prior curriculum (weights 5:4:3:2:1 over levels 1..5, none solved).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacot.api.generation import Endpoint
from adacot.artifacts.rows import GradedQuestion
from adacot.demo import spec
from adacot.demo.pretrain import PretrainPlan
from adacot.stages.levels import LEVELS, level_from_cuts

ARMS = {
    "A": "PRM levels + the student's P_eval (the method)",
    "U": "PRM levels, uniform over levels 0..5",
    "B": "pass-rate levels + the pass-rate P_eval",
    "C": "PRM levels + a stronger student's P_eval",
    "P": "PRM levels + P_prior 5:4:3:2:1 over levels 1..5",
}
PRIOR = {"weights": [5, 4, 3, 2, 1], "easyWeight": 0}


@dataclass(frozen=True)
class ExperimentSize:
    """The demo's sizes for one student, plus the stronger student of arm C and the seeds."""

    demo: spec.DemoSize
    strong: PretrainPlan
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Models:
    """Where the trained models are."""

    student: Path
    strong: Path
    teacher: Path
    prm: Path


def job_name(arm: str, seed: int) -> str:
    """The DistillationJob of one arm and seed (its SFTJob adds -sft)."""
    return f"{arm.lower()}-s{seed}"


def grading_documents(root: Path, size: ExperimentSize, models: Models) -> list[dict[str, Any]]:
    """pool/eval/bank graded by the PRM, the same by pass rate (-pr), and the strong student's eval."""
    prm = spec.prm_grader(root, models.prm)
    docs = spec.graded_bank(root, size.demo, models.student, prm)
    docs += spec.graded_bank(root, size.demo, models.student, spec.PASS_RATE_GRADER, suffix="-pr")
    strong = {"path": os.path.relpath(models.strong, root), "maxModelLen": spec.MAX_MODEL_LEN}
    fitted = {**prm, "levels": {"mode": "quantiles"}}
    docs.append(spec.doc("GradingRun", "eval-strong", spec.grading(size.demo, "eval.jsonl", strong, fitted)))
    return docs


def distribution(arm: str, strong_table: dict[str, float] | None) -> tuple[str, dict[str, Any]]:
    """(bank, distribution spec) of an arm."""
    if arm == "A":
        return "bank", {"fromGradingRun": {"name": "eval"}}
    if arm == "U":
        return "bank", {"table": spec.UNIFORM}
    if arm == "B":
        return "bank-pr", {"fromGradingRun": {"name": "eval-pr"}}
    if arm == "C":
        if strong_table is None:
            raise ValueError("arm C needs the stronger student's level shares (grade eval-strong first)")
        return "bank", {"table": strong_table}
    if arm == "P":
        return "bank", {"prior": PRIOR}
    raise ValueError(f"unknown arm {arm!r}; arms are {', '.join(ARMS)}")


def arm_documents(
    size: ExperimentSize,
    teacher: Endpoint,
    arms: Sequence[str],
    strong_table: dict[str, float] | None,
    *,
    test: str,
    suffix: str = "-sft",
) -> list[dict[str, Any]]:
    """A DistillationJob and an SFTJob per arm and seed; the first SFTJob also evaluates the base model."""
    docs, first = [], True
    for seed in size.seeds:
        for arm in arms:
            bank, wanted = distribution(arm, strong_table)
            name = job_name(arm, seed)
            job = spec.distil(size.demo, teacher, wanted, bank=bank, seed=seed)
            docs.append(spec.doc("DistillationJob", name, job))
            sft = spec.sft(size.demo, name, compare_base=first, seed=seed, test=test, engine="vllm")
            docs.append(spec.doc("SFTJob", f"{name}{suffix}", sft))
            first = False
    return docs


def rerun_document(
    size: ExperimentSize, arm: str, seed: int, *, test: str, suffix: str = "-sft"
) -> dict[str, Any]:
    """A second SFTJob on the same data and seed as `arm`/`seed`: the run-to-run check."""
    name = job_name(arm, seed)
    sft = spec.sft(size.demo, name, compare_base=False, seed=seed, test=test, engine="vllm")
    return spec.doc("SFTJob", f"{name}-rerun{suffix}", sft)


def levels_on_scale(rows: Iterable[GradedQuestion], cuts: Sequence[float | None]) -> dict[int, int]:
    """Questions per level when unsolved scores are placed by `cuts` (solved stay level 0; cut-off
    answers without a score keep the level their run gave them), as the bank's cutPointsFrom does."""
    counts = dict.fromkeys(LEVELS, 0)
    for row in rows:
        if row.level is None:
            continue
        fixed = row.level == 0 or row.score is None
        counts[row.level if fixed else level_from_cuts(row.score, cuts)] += 1  # type: ignore[arg-type]
    return counts


def table_from_counts(counts: dict[int, int]) -> dict[str, float]:
    """A distribution table (string level keys) of shares from counts."""
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no graded question: no distribution")
    return {str(level): count / total for level, count in counts.items()}
