"""Real GradingRun artifacts for the bank-levels and P_eval-check tests, made by the grading pipeline
from pre-generated responses and the scripted PRM (tests/grading_scripted.py).

Each question is "What is I + 1?" and a response fixes its outcome: a float s in [0, 1] gives one wrong
sample whose only step the scripted PRM scores s; the string "solved" gives a right sample; a list of
booleans gives one sample per entry, right or wrong (for the pass-rate grader).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grading_scripted import ScriptedScorer

from adacot.api.grading_run import GradingRun
from adacot.pipelines.grading_run import run_grading_run

Outcome = float | str | Sequence[bool]
PRM_GRADER: dict[str, Any] = {"prm": {"model": {"path": "/models/prm"}}}


def _texts(index: int, outcome: Outcome) -> list[str]:
    right, wrong = f"so \\boxed{{{index + 1}}}", f"so \\boxed{{{index + 2}}}"
    if outcome == "solved":
        return [right]
    if isinstance(outcome, float):
        return [f"score={outcome} {wrong}"]
    assert not isinstance(outcome, str)
    return [right if ok else f"score=0.5 {wrong}" for ok in outcome]


def graded_run(
    root: Path,
    name: str,
    outcomes: Mapping[str, Outcome],
    *,
    grader: Mapping[str, Any] | None = None,
    model: str = "/models/student",
    n: int = 1,
    bank: str | None = None,
) -> Path:
    """Grade `outcomes` (question id -> outcome) as GradingRun `name`; returns its artifact directory."""
    work = root / f"{name}-inputs"
    work.mkdir(parents=True, exist_ok=True)
    questions, responses = [], []
    for index, (qid, outcome) in enumerate(outcomes.items()):
        questions.append(
            {"id": qid, "problem": f"What is {index} + 1? ({name} {qid})", "answer": str(index + 1)}
        )
        responses += [{"id": qid, "response": text} for text in _texts(index, outcome)]
    (work / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (work / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    spec: dict[str, Any] = {
        "questions": {"path": str(work / "questions.jsonl"), "fields": {"id": "id"}},
        "model": {"path": model},
        "responses": {"path": str(work / "responses.jsonl")},
        "sampling": {"samplesPerQuestion": n},
        "grader": dict(grader if grader is not None else PRM_GRADER),
        "verification": {"workers": 1},
    }
    if bank is not None:
        spec["bankRef"] = {"name": bank}
    resource = GradingRun.model_validate({"kind": "GradingRun", "metadata": {"name": name}, "spec": spec})
    out = root / name
    run_grading_run(resource, out, scorer=ScriptedScorer)
    return out
