"""`run_evaluation`: grade one model (and optionally a base model) on benchmarks; accuracy and pass@k.

Callers: `adacot eval`, the SFT pipeline's evaluation after training (EvaluationSpec of SFTJob), tests.
There is no second grading implementation: every (model, benchmark) pair is a GradingRun executed by
`run_grading_run` (same prompts, engines, verifiers, shards, resume); the figures are computed from its
records by adacot.stages.evaluate.

Layout under the output directory::

    grading/<label>/<benchmark>/   a complete GradingRun artifact (labels: model, base)
    summary.json                   per model and benchmark: accuracy, pass@k, counts; the comparison
    EVAL.md                        the same as markdown tables

Evaluation needs correctness only, so the GradingRuns use the pass-rate grader (no PRM is loaded); with
one sample per question that grader's "at least 2 samples" rule, which guards the quality of levels, does not
apply and is bypassed on purpose (the levels in these records are meaningless and unused). An
interrupted evaluation resumes question by question through the grading pipeline. Limits: the models
are evaluated one after the other, each with its own engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adacot.api.common import DatasetSpec, ModelSpec
from adacot.api.grading_run import GraderSpec, GradingRun, GradingRunSpec
from adacot.api.resource import ObjectMeta
from adacot.api.sft_job import EvalSet, EvaluationSpec
from adacot.artifacts.manifest import atomic_write_bytes
from adacot.artifacts.rows import GradedQuestion
from adacot.artifacts.store import read_records
from adacot.artifacts.summary import write_summary
from adacot.pipelines.grading_run import GeneratorFactory, run_grading_run
from adacot.progress.meter import ProgressCallback
from adacot.stages import evaluate

MARKDOWN_NAME, GRADING_DIR = "EVAL.md", "grading"
ProgressFactory = Callable[[str], ProgressCallback | None]


def slug(text: str) -> str:
    """A DNS-1123 label made of `text` (benchmark names become directory and resource names)."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label[:40].strip("-") or "benchmark"


def grading_run(evaluation: EvaluationSpec, dataset: EvalSet, model: ModelSpec, label: str) -> GradingRun:
    """The GradingRun that evaluates `model` on one benchmark."""
    questions = DatasetSpec.model_validate(dataset.model_dump(exclude={"name"}))
    sampling = evaluation.sampling
    spec = GradingRunSpec(
        questions=questions,
        model=model,
        inference=evaluation.inference,
        prompt=evaluation.prompt,
        sampling=sampling
        if sampling.samples_per_question >= 2
        else sampling.model_copy(update={"samples_per_question": 2}),
        verification=evaluation.verification,
        grader=GraderSpec(method="passRate", solved_rule="any"),
    )
    name = f"eval-{label}-{slug(dataset.name)}"[:52].strip("-")
    run = GradingRun(metadata=ObjectMeta(name=name), spec=spec)
    if (
        sampling.samples_per_question < 2
    ):  # see the module docstring: model_copy skips the 2-sample rule of the pass-rate grader
        # (on the resource, not the spec: building the resource validates its spec again)
        run = run.model_copy(update={"spec": spec.model_copy(update={"sampling": sampling})})
    return run


def evaluate_model(
    evaluation: EvaluationSpec,
    model: ModelSpec,
    out_dir: Path,
    label: str,
    *,
    progress: ProgressFactory | None = None,
    generator: GeneratorFactory | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Scores of one model on every benchmark of `evaluation`, by benchmark name."""
    names = [d.name for d in evaluation.datasets]
    if len(set(map(slug, names))) != len(names):
        raise ValueError(f"evaluation.datasets: benchmark names must be distinct (got {', '.join(names)})")
    scores: dict[str, Any] = {}
    for dataset in evaluation.datasets:
        where = out_dir / GRADING_DIR / label / slug(dataset.name)
        callback = progress(f"{label}/{dataset.name}") if progress is not None else None
        resource = grading_run(evaluation, dataset, model, label)
        run_grading_run(resource, where, progress=callback, generator=generator, base_dir=base_dir)
        scores[dataset.name] = evaluate.benchmark_scores(read_records(where, GradedQuestion))
    return {"model": model.identity(), "benchmarks": scores}


def run_evaluation(
    evaluation: EvaluationSpec,
    out_dir: str | Path,
    *,
    model: ModelSpec,
    base_model: ModelSpec | None = None,
    progress: ProgressFactory | None = None,
    generators: Mapping[str, GeneratorFactory] | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate `model` (label "model") and `base_model` (label "base"); write summary.json and EVAL.md.

    `generators` overrides the engine per label (tests); by default each model's engine is built from
    `evaluation.inference`.
    """
    root = Path(out_dir)
    models = {"model": model, **({"base": base_model} if base_model is not None else {})}
    results = {
        label: evaluate_model(
            evaluation,
            spec,
            root,
            label,
            progress=progress,
            generator=(generators or {}).get(label),
            base_dir=base_dir,
        )
        for label, spec in models.items()
    }
    summary: dict[str, Any] = {"models": results}
    if "base" in results:
        summary["comparison"] = evaluate.comparison(
            results["model"]["benchmarks"], results["base"]["benchmarks"]
        )
    root.mkdir(parents=True, exist_ok=True)
    write_summary(root, summary)
    atomic_write_bytes(root / MARKDOWN_NAME, evaluate.markdown(summary).encode())
    return summary
