"""The demo's sizes and its distill.yaml: the same multi-document YAML `kubectl apply -f` takes.

Callers: adacot.demo.pipeline. Pure: sizes in, documents out (plus writing the question files).

The file holds the method and its ablation in miniature, all in one namespace:

    pool (GradingRun, bankRef) ──▶ bank (DifficultyBank, cut points from eval) ──▶ adaptive (DistillationJob,
    eval (GradingRun: P_eval, quantile levels) ──┴──────────────────────────────┘   fromGradingRun: eval)
                                                                     └▶ ablation (DistillationJob, same N
                                                                        and seed, uniform over 0..5)
    adaptive ──▶ adaptive-sft (SFTJob, evaluation on the test set, compareBase: accuracy before/after)
    ablation ──▶ ablation-sft (SFTJob, evaluation on the same test set)

Grading is the paper's PRM-Grader: k samples at temperature 0.7; a question is solved (level 0) when
every sample is right; an unsolved one is scored by the PRM (adacot.demo.prm: Qwen2.5-Math-PRM's
convention, trained here on the student's labelled steps), each answer by its weakest step (min), the
question by the mean over its wrong answers. The eval run places those scores in five equal groups
(quantiles) and records its cut points; the bank re-levels the pool with exactly those cut points, so
P_eval and the bank share one scale. `grading(...)` also builds the pass-rate grader's runs (the
experiment's arm B). Pool, eval and test questions are disjoint sums.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adacot.api.generation import Endpoint
from adacot.demo.pretrain import PretrainPlan
from adacot.demo.prm import PrmPlan
from adacot.demo.synthetic import sums

API_VERSION = "adacot.dev/v1alpha1"
UNIFORM = {str(level): 1.0 for level in range(6)}
KV_CACHE_BYTES = str(256 << 20)  # vLLM's CPU build otherwise reserves a share of the host's memory
MAX_MODEL_LEN = 256
ONE_DIGIT_SUMS = 100


@dataclass(frozen=True)
class DemoSize:
    """Everything that makes the demo long or short."""

    pool: int
    eval: int
    test: int
    distill: int
    k: int
    student: PretrainPlan
    teacher: PretrainPlan
    sft_epochs: float
    grading_engine: str
    prm: PrmPlan | None = None  # the demo's PRM; None where a chain grades without one (code)

    def prm_plan(self) -> PrmPlan:
        """The PRM's plan, for the chains that train one."""
        if self.prm is None:
            raise ValueError("this chain grades with a trained PRM: its size needs a PrmPlan")
        return self.prm


FULL = DemoSize(
    pool=600, eval=200, test=200, distill=200, k=4, sft_epochs=30, grading_engine="vllm",
    student=PretrainPlan(steps=1000, seed=1, learning_rate=1e-3), teacher=PretrainPlan(steps=1500, seed=2),
    prm=PrmPlan(questions=2000, steps=400),
)  # fmt: skip
QUICK = DemoSize(
    pool=120, eval=60, test=60, distill=40, k=4, sft_epochs=30, grading_engine="transformers",
    student=PretrainPlan(steps=800, seed=1, learning_rate=1e-3), teacher=PretrainPlan(steps=400, seed=2),
    prm=PrmPlan(questions=300, steps=60, held_out=100),
)  # fmt: skip


def write_questions(root: Path, size: DemoSize, seed: int = 0) -> dict[str, Path]:
    """pool.jsonl, eval.jsonl and test.jsonl under `root`: disjoint sums, each set with the same shares of
    1-, 2- and 3-digit sums (so P_eval measured on eval describes the pool too).

    There are only 100 one-digit sums: a third of the questions, at most 100, have one digit and the rest
    split evenly between two and three digits. The sets are stratified slices of one list that
    interleaves the sizes evenly (item i of n in its size sorts at (i + 0.5) / n).
    """
    total = size.pool + size.eval + size.test
    ones = min(ONE_DIGIT_SUMS, total // 3)
    counts = (ones, (total - ones) // 2, total - ones - (total - ones) // 2)
    placed = []
    for digits, count in enumerate(counts, start=1):
        weights = tuple(1.0 if d == digits else 0.0 for d in range(1, len(counts) + 1))
        placed += [
            ((i + 0.5) / count, s) for i, s in enumerate(sums(count, seed + digits, digit_weights=weights))
        ]
    items = [s.row() for _, s in sorted(placed, key=lambda pair: pair[0])]
    return write_sets(root, items, size.pool, size.eval)


def write_sets(root: Path, rows: list[dict[str, Any]], pool: int, eval: int) -> dict[str, Path]:
    """pool.jsonl (the first `pool` rows), eval.jsonl (the next `eval`) and test.jsonl (the rest)."""
    parts = {"pool": rows[:pool], "eval": rows[pool : pool + eval], "test": rows[pool + eval :]}
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, part in parts.items():
        paths[name] = root / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in part))
    return paths


def question_ids(paths: dict[str, Path]) -> set[str]:
    """Ids of every question in the written sets (the PRM trains on other sums)."""
    return {json.loads(line)["id"] for path in paths.values() for line in path.read_text().splitlines()}


def documents(
    root: Path, size: DemoSize, student: Path, prm: Path, teacher: Endpoint
) -> list[dict[str, Any]]:
    """The seven resources, paths relative to `root` (where the YAML is written)."""
    docs = graded_bank(root, size, student, prm_grader(root, prm))
    return [
        *docs,
        doc("DistillationJob", "adaptive", distil(size, teacher, {"fromGradingRun": {"name": "eval"}})),
        doc("DistillationJob", "ablation", distil(size, teacher, {"table": UNIFORM})),
        doc("SFTJob", "adaptive-sft", sft(size, "adaptive", compare_base=True)),
        doc("SFTJob", "ablation-sft", sft(size, "ablation", compare_base=False)),
    ]


def graded_bank(
    root: Path, size: DemoSize, student: Path, grader: dict[str, Any], *, suffix: str = ""
) -> list[dict[str, Any]]:
    """pool → bank and eval (P_eval) for one student and grader; names end with `suffix`. A PRM grader's
    bank takes its cut points from the eval run, whose levels are quantiles (the module docstring)."""
    model = {"path": os.path.relpath(student, root), "maxModelLen": MAX_MODEL_LEN}
    fitted = grader["method"] == "prm"
    eval_grader = {**grader, "levels": {"mode": "quantiles"}} if fitted else grader
    bank = {"levels": {"cutPointsFrom": {"name": f"eval{suffix}"}}} if fitted else {}
    pool = {**grading(size, "pool.jsonl", model, grader), "bankRef": {"name": f"bank{suffix}"}}
    return [
        doc("GradingRun", f"pool{suffix}", pool),
        doc("GradingRun", f"eval{suffix}", grading(size, "eval.jsonl", model, eval_grader)),
        doc("DifficultyBank", f"bank{suffix}", bank),
    ]


def prm_grader(root: Path, prm: Path) -> dict[str, Any]:
    """The PRM-Grader over the demo's PRM (a Qwen2.5-Math-PRM-shaped checkpoint: remote code)."""
    model = {"path": os.path.relpath(prm, root), "trustRemoteCode": True, "maxModelLen": 512}
    return {
        "method": "prm", "solvedRule": "threshold", "solvedThreshold": 1.0,
        "prm": {"kind": "discriminative", "model": model, "stepSplit": "newlines", "aggregation": "min",
                "sampleAggregation": "mean", "batchSize": 64},
    }  # fmt: skip


PASS_RATE_GRADER = {"method": "passRate", "solvedRule": "threshold", "solvedThreshold": 1.0}


class _KubectlSafeDumper(yaml.SafeDumper):
    """Quotes y/n/Y/N: kubectl's YAML 1.1 reader takes a bare `n:` for the boolean false (no field is
    named so since sampling.n became samplesPerQuestion; kept for free-form maps such as env)."""


_KubectlSafeDumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def dump(docs: list[dict[str, Any]]) -> str:
    """The documents as one multi-document YAML that both `adacot run` and `kubectl apply -f` read alike."""
    return yaml.dump_all(docs, Dumper=_KubectlSafeDumper, sort_keys=False)


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _inference(engine: str) -> dict[str, Any]:
    options = {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]}
    return {"engine": engine, "batchSize": 64, **({"vllm": options} if engine == "vllm" else {})}


def _questions(path: str, task: str) -> dict[str, Any]:
    """A question file's dataset block (ids from the `id` field; code rows carry `tests`)."""
    return {"path": path, "fields": {"id": "id"}, **({"task": task} if task != "math" else {})}


_PROMPT = {"instruction": ""}  # the question alone: what the models were trained on (see synthetic.py)
_VERIFY = {"workers": 1}


def grading(
    size: DemoSize,
    path: str,
    model: dict[str, Any],
    grader: dict[str, Any],
    *,
    task: str = "math",
    max_tokens: int = 32,
) -> dict[str, Any]:
    """A GradingRun's spec: k samples of `model` on the `task` questions in `path`, graded by `grader`."""
    return {
        "questions": _questions(path, task),
        "model": model,
        "inference": _inference(size.grading_engine),
        "prompt": _PROMPT,
        "sampling": {
            "samplesPerQuestion": size.k,
            "maxTokens": max_tokens,
            "temperature": 0.7,
            "topP": 1.0,
            "seed": 0,
        },
        "grader": grader,
        "verification": _VERIFY,
        "resources": {"gpus": 0},
    }


def distil(
    size: DemoSize,
    teacher: Endpoint | dict[str, Any],
    distribution: dict[str, Any],
    *,
    bank: str = "bank",
    seed: int = 0,
    max_tokens: int = 64,
) -> dict[str, Any]:
    """A DistillationJob's spec: `size.distill` questions of `bank` drawn to `distribution` with `seed`;
    the teacher is an endpoint, or a `server` block the stage starts itself."""
    source = (
        {"endpoint": teacher.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
        if isinstance(teacher, Endpoint)
        else {"server": teacher}
    )
    return {
        "bankRef": {"name": bank},
        "distribution": distribution,
        "size": size.distill,
        "seed": seed,
        "teacher": {
            **source,
            "prompt": _PROMPT,
            "sampling": {"temperature": 0.6, "topP": 0.95, "maxTokens": max_tokens, "seed": 0},
            "maxAttempts": 2,
        },
        "verification": _VERIFY,
        "resources": {"gpus": 0},
    }


def sft(
    size: DemoSize,
    job: str,
    *,
    compare_base: bool,
    seed: int = 0,
    test: str = "test.jsonl",
    engine: str = "transformers",
    task: str = "math",
    max_tokens: int = 64,
) -> dict[str, Any]:
    """An SFTJob's spec: fine-tune on `job`'s traces (seeded order), evaluate greedily on `test`."""
    training = {
        "epochs": size.sft_epochs, "learningRate": 1e-3, "perDeviceBatchSize": 8,
        "gradientAccumulationSteps": 1, "lrScheduler": "constant", "warmupRatio": 0,
        "maxSeqLength": MAX_MODEL_LEN, "packing": False, "gradientCheckpointing": False,
        "loggingSteps": 1, "saveSteps": 1000, "precision": "fp32", "seed": seed,
    }  # fmt: skip
    evaluation = {
        "datasets": [{"name": Path(test).stem, **_questions(test, task)}],
        "sampling": {
            "samplesPerQuestion": 1,
            "maxTokens": max_tokens,
            "temperature": 0.0,
            "seed": 0,
        },  # greedy accuracy
        "prompt": _PROMPT,
        "inference": _inference(engine),
        "verification": _VERIFY,
        "compareBase": compare_base,
    }
    return {
        "dataset": {"distillationJobRef": {"name": job}},
        "training": training,
        "deepspeed": {"stage": 0},
        "resources": {"gpus": 0},
        "evaluation": evaluation,
    }
