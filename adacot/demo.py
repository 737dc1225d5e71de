"""`adacot demo` as far as the stages exist: the foundation, end to end, on bundled data.

Steps: validate the sample pipeline (crds/samples/distill.yaml) with the shared loader and print its
stage order; load the bundled example questions through the dataset loader (field mapping, stable
ids); verify the bundled responses with the math and code Result-Verifiers (worker processes, the
sandbox); write the verdicts as an artifact directory (data, MANIFEST.json, _SUCCESS) and print a
summary. The full local pipeline (grade → bank → distil → SFT → evaluate) replaces this as the stages
land. Limits: the example responses are hand-written, not model output.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from adacot.api.common import DatasetSpec, FieldMapping, TaskType
from adacot.artifacts import ArtifactDir, Attempt, Manifest, load_questions, package_versions
from adacot.artifacts.rows import Question
from adacot.verify.verdict import Verdict

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "crds" / "samples" / "distill.yaml"


def example_path(name: str) -> Path:
    """A bundled example file (package data), as a path."""
    return Path(str(resources.files("adacot") / "data" / "examples" / name))


def run_demo(workdir: Path, *, workers: int = 2, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the foundation demo into `workdir`; return the summary that was printed."""
    _show_pipeline(echo)
    math_questions = _load("math_responses.jsonl", TaskType.math)
    code_questions = _load("code_responses.jsonl", TaskType.code)
    echo(f"loaded {len(math_questions)} math and {len(code_questions)} code questions")
    attempts = _verify_math(math_questions, workers) + _verify_code(code_questions, workers)
    manifest = _write(workdir / "verified", attempts)
    labels = {q.id: bool(q.meta["expected"]) for q in math_questions + code_questions}
    summary = _summary(attempts, manifest, labels)
    echo(_table(attempts))
    echo(json.dumps(summary, indent=2))
    return summary


def _show_pipeline(echo: Callable[[str], None]) -> None:
    if not PIPELINE.exists():
        echo(f"(skipping the pipeline check: {PIPELINE} is not part of an installed package)")
        return
    from adacot.api import dependency_graph
    from adacot.api.loader import load_resources

    graph = dependency_graph(load_resources(PIPELINE))
    echo(f"{PIPELINE.name}: {len(graph)} resources valid; stages and what each waits for:")
    for (kind, name), needs in graph.items():
        waits = ", ".join(f"{k}/{n}" for k, n in needs) or "nothing"
        echo(f"  {kind}/{name} <- {waits}")


def _load(name: str, task: TaskType) -> list[Question]:
    fields = FieldMapping(id="id")
    spec = DatasetSpec(path=str(example_path(name)), task=task, fields=fields)
    return load_questions(spec).questions


def _verify_math(questions: list[Question], workers: int) -> list[Attempt]:
    from adacot.verify.math import MathVerifier

    pairs = [(str(q.meta["response"]), q.answer or "") for q in questions]
    with MathVerifier(workers=workers) as verifier:
        return _attempts(questions, verifier.verify_many(pairs))


def _verify_code(questions: list[Question], workers: int) -> list[Attempt]:
    from adacot.verify.code import CodeVerifier

    pairs = [(str(q.meta["response"]), q.tests or {}) for q in questions]
    with CodeVerifier(workers=workers) as verifier:
        return _attempts(questions, verifier.verify_many(pairs))


def _attempts(questions: list[Question], verdicts: Any) -> list[Attempt]:
    out = []
    for question, verdict in zip(questions, verdicts, strict=True):
        text = str(question.meta["response"])
        out.append(
            Attempt(question_id=question.id, sample=0, text=text, finish_reason="stop", verdict=verdict)
        )
    return out


def _write(root: Path, attempts: list[Attempt]) -> Manifest:
    if (root / "_SUCCESS").exists():  # a rerun replaces the previous demo output
        import shutil

        shutil.rmtree(root)
    artifact = ArtifactDir(root).prepare()
    artifact.write_shard("part-00000.jsonl", attempts, Attempt)
    accuracy = sum(bool(a.verdict and a.verdict.correct) for a in attempts) / len(attempts)
    manifest = Manifest(
        kind="Demo",
        name="verify-examples",
        record_type="Attempt",
        versions=package_versions(),
        metrics={"accuracy": accuracy},
    )
    return artifact.finalize(manifest)


def _summary(attempts: list[Attempt], manifest: Manifest, labels: dict[str, bool]) -> dict[str, Any]:
    verdicts = [a.verdict for a in attempts if a.verdict is not None]
    return {
        "records": manifest.total_records,
        "correct": sum(v.correct is True for v in verdicts),
        "wrong": sum(v.correct is False for v in verdicts),
        "undecided": sum(v.correct is None for v in verdicts),
        "agree_with_labels": f"{_agreement(attempts, labels)}/{len(attempts)}",
        "reasons": dict(sorted(Counter(v.reason for v in verdicts).items())),
        "files": {name: entry.sha256[:12] for name, entry in manifest.files.items()},
    }


def _agreement(attempts: list[Attempt], labels: dict[str, bool]) -> int:
    """How many verdicts match the hand label (`expected`) each bundled example carries."""
    return sum(bool(a.verdict and a.verdict.correct is labels[a.question_id]) for a in attempts)


def _table(attempts: list[Attempt]) -> str:
    lines = ["| question | correct | reason | extracted |", "| --- | --- | --- | --- |"]
    for attempt in attempts:
        verdict = attempt.verdict or Verdict(correct=None, reason="unverified")
        extracted = (verdict.extracted or "").replace("\n", " ")[:40]
        lines.append(f"| {attempt.question_id} | {verdict.correct} | {verdict.reason} | `{extracted}` |")
    return "\n".join(lines)
