"""The demo's sizes and its distill.yaml: the same multi-document YAML `kubectl apply -f` takes.

Callers: adacot.demo.pipeline. Pure: sizes in, documents out (plus writing the question files).

The file holds the method and its ablation in miniature, all in one namespace:

    pool (GradingRun, bankRef) ──▶ bank (DifficultyBank) ──▶ adaptive (DistillationJob, fromGradingRun: eval)
    eval (GradingRun: P_eval) ─────────────────────────────┘ └▶ ablation (DistillationJob, same N and seed,
                                                               uniform table over levels 0..5)
    adaptive ──▶ adaptive-sft (SFTJob, evaluation on the test set, compareBase: accuracy before/after)
    ablation ──▶ ablation-sft (SFTJob, evaluation on the same test set)

Grading uses the pass-rate grader (a PRM means nothing for a 0.7M-parameter model): k samples at
temperature 0.7, solved only when every sample is right, and the share right maps to levels 1..5 with
the default bins (so with k = 5 each unsolved level is one more wrong sample). Pool, eval and test
questions are disjoint sums.
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


FULL = DemoSize(
    pool=600, eval=200, test=200, distill=200, k=5, sft_epochs=30, grading_engine="vllm",
    student=PretrainPlan(steps=1000, seed=1, learning_rate=1e-3), teacher=PretrainPlan(steps=1500, seed=2),
)  # fmt: skip
QUICK = DemoSize(
    pool=120, eval=60, test=60, distill=40, k=4, sft_epochs=30, grading_engine="transformers",
    student=PretrainPlan(steps=800, seed=1, learning_rate=1e-3), teacher=PretrainPlan(steps=400, seed=2),
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
    items = [s for _, s in sorted(placed, key=lambda pair: pair[0])]
    parts = {"pool": items[: size.pool], "eval": items[size.pool : size.pool + size.eval]}
    parts["test"] = items[size.pool + size.eval :]
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in parts.items():
        paths[name] = root / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(s.row()) + "\n" for s in rows))
    return paths


def documents(root: Path, size: DemoSize, student: Path, teacher: Endpoint) -> list[dict[str, Any]]:
    """The eight resources, paths relative to `root` (where the YAML is written)."""
    model = {"path": os.path.relpath(student, root), "maxModelLen": MAX_MODEL_LEN}
    docs = [
        _doc("GradingRun", "pool", {**_grading(size, "pool.jsonl", model), "bankRef": {"name": "bank"}}),
        _doc("GradingRun", "eval", _grading(size, "eval.jsonl", model)),
        _doc("DifficultyBank", "bank", {}),
        _doc("DistillationJob", "adaptive", _distil(size, teacher, {"fromGradingRun": {"name": "eval"}})),
        _doc("DistillationJob", "ablation", _distil(size, teacher, {"table": UNIFORM})),
        _doc("SFTJob", "adaptive-sft", _sft(size, "adaptive", compare_base=True)),
        _doc("SFTJob", "ablation-sft", _sft(size, "ablation", compare_base=False)),
    ]
    return docs


class _KubectlSafeDumper(yaml.SafeDumper):
    """Quotes y/n/Y/N: kubectl's YAML 1.1 reader takes a bare `n:` (sampling.n) for the boolean false."""


_KubectlSafeDumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def dump(docs: list[dict[str, Any]]) -> str:
    """The documents as one multi-document YAML that both `adacot run` and `kubectl apply -f` read alike."""
    return yaml.dump_all(docs, Dumper=_KubectlSafeDumper, sort_keys=False)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _inference(engine: str) -> dict[str, Any]:
    options = {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]}
    return {"engine": engine, "batchSize": 64, **({"vllm": options} if engine == "vllm" else {})}


_PROMPT = {"instruction": ""}  # the question alone: what the models were trained on (see synthetic.py)
_VERIFY = {"workers": 1}


def _grading(size: DemoSize, path: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "questions": {"path": path, "fields": {"id": "id"}},
        "model": model,
        "inference": _inference(size.grading_engine),
        "prompt": _PROMPT,
        "sampling": {"n": size.k, "maxTokens": 16, "temperature": 0.7, "topP": 1.0, "seed": 0},
        "grader": {"method": "passRate", "solvedRule": "threshold", "solvedThreshold": 1.0},
        "verification": _VERIFY,
        "resources": {"gpus": 0},
    }


def _distil(size: DemoSize, teacher: Endpoint, distribution: dict[str, Any]) -> dict[str, Any]:
    endpoint = teacher.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return {
        "bankRef": {"name": "bank"},
        "distribution": distribution,
        "size": size.distill,
        "seed": 0,
        "teacher": {
            "endpoint": endpoint,
            "prompt": _PROMPT,
            "sampling": {"temperature": 0.6, "topP": 0.95, "maxTokens": 64, "seed": 0},
            "maxAttempts": 2,
        },
        "verification": _VERIFY,
        "resources": {"gpus": 0},
    }


def _sft(size: DemoSize, job: str, *, compare_base: bool) -> dict[str, Any]:
    training = {
        "epochs": size.sft_epochs, "learningRate": 1e-3, "perDeviceBatchSize": 8,
        "gradientAccumulationSteps": 1, "lrScheduler": "constant", "warmupRatio": 0,
        "maxSeqLength": MAX_MODEL_LEN, "packing": False, "gradientCheckpointing": False,
        "loggingSteps": 1, "saveSteps": 1000, "precision": "fp32",
    }  # fmt: skip
    evaluation = {
        "datasets": [{"name": "test", "path": "test.jsonl", "fields": {"id": "id"}}],
        "sampling": {"n": 1, "maxTokens": 64, "temperature": 0.0, "seed": 0},  # greedy accuracy
        "prompt": _PROMPT,
        "inference": _inference("transformers"),
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
