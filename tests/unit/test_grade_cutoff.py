"""Attempts cut off by max tokens (grader.truncated: scored | hardest | drop) and traces longer than the
PRM's context (grader.prm.onOverflow: truncate | skip), through the real grading stage (grade_chunk, the
real math verifier, scripted engines) and the grading pipeline (pre-generated responses carrying finish
reasons), with the flags carried to the bank and the counts to the summary and status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grading_scripted import ScriptedGenerator, ScriptedScorer

from adacot.api.common import TaskType
from adacot.api.difficulty_bank import DedupeSpec
from adacot.api.grading_run import GraderSpec, GradingRun, GradingRunSpec
from adacot.artifacts import BankEntry, GradedQuestion, read_records
from adacot.artifacts.rows import Question
from adacot.backends.base import Sample
from adacot.pipelines.grading_run import run_grading_run
from adacot.runner.table import figures
from adacot.stages.bank import SourceRows, build_bank
from adacot.stages.grade import PENDING_LEVEL, GradeStats, grade_chunk
from adacot.verify.math import MathVerifier

PRM = {"model": {"path": "/models/prm"}}
QUESTION = Question(id="q", task=TaskType.math, problem="What is 2+2?", answer="4", source="t")
#: A long-CoT attempt stopped by max tokens inside its reasoning: steps, no answer.
CUT = Sample("Try 1 score=0.9\n\nTry 2 score=0.8, hmm, let me reconsider", "length", completion_tokens=64)
WRONG = Sample("Add score=0.7, so \\boxed{5}", "stop", completion_tokens=9)
RIGHT = Sample("Add score=0.6, so \\boxed{4}", "stop", completion_tokens=9)


def spec(truncated: str | None = None, n: int = 2, **prm: Any) -> GradingRunSpec:
    grader: dict[str, Any] = {"prm": {**PRM, **prm}}
    if truncated is not None:
        grader["truncated"] = truncated
    return GradingRunSpec.model_validate(
        {
            "questions": {"path": "q.jsonl"},
            "model": {"path": "/m"},
            "grader": grader,
            "sampling": {"samplesPerQuestion": n},
        }
    )


@pytest.fixture(scope="module")
def verifier() -> Iterator[MathVerifier]:
    with MathVerifier(workers=1, timeout_s=10) as v:
        yield v


def grade(
    samples: list[Sample], run: GradingRunSpec, verifier: MathVerifier
) -> tuple[GradedQuestion, ScriptedScorer, GradeStats]:
    scorer, stats = ScriptedScorer(), GradeStats()
    generator = ScriptedGenerator(lambda text, n: samples)
    (record,) = grade_chunk(
        [QUESTION], run, verifier, generator=generator, scorer=lambda: scorer, stats=stats
    )
    return record, scorer, stats


def test_the_default_puts_an_unsolved_question_with_a_cut_attempt_at_level_five() -> None:
    assert GraderSpec().truncated == "hardest"


@pytest.mark.parametrize(
    ("mode", "level", "score", "attempts", "scored"),
    [
        # scored: the cut attempt is wrong (no answer) and the PRM scores the steps it wrote: min 0.8.
        ("scored", None, pytest.approx((0.8 + 0.7) / 2), 2, 2),
        # hardest: the model could not finish: level 5 at once, no PRM score (none is needed).
        ("hardest", 5, None, 2, 0),
        # drop: the cut attempt is no evidence; the question is graded on the finished one.
        ("drop", None, 0.7, 1, 1),
    ],
)
def test_each_mode_grades_a_cut_attempt_as_it_says(
    verifier: MathVerifier, mode: str, level: int | None, score: Any, attempts: int, scored: int
) -> None:
    record, scorer, stats = grade([CUT, WRONG], spec(mode), verifier)
    assert record.truncated == 1 and stats.truncated == 1  # flagged on the question, counted
    assert (record.solved, record.level, record.score) == (False, level, score)
    assert record.reason == (PENDING_LEVEL if level is None else None)
    assert len(record.attempts) == attempts and len(scorer.items) == scored
    assert [a.finish_reason for a in record.attempts] == ["length", "stop"][-attempts:]
    assert [a.truncated for a in record.attempts] == [True, False][-attempts:]  # flagged per attempt


@pytest.mark.parametrize("mode", ["scored", "hardest", "drop"])
def test_a_right_answer_still_solves_the_question_in_every_mode(verifier: MathVerifier, mode: str) -> None:
    record, _, _ = grade([CUT, RIGHT], spec(mode), verifier)
    assert (record.level, record.solved, record.truncated) == (0, True, 1)
    assert record.pass_rate == (1.0 if mode == "drop" else 0.5)  # drop: the cut attempt is not a sample


def test_drop_leaves_a_question_whose_every_attempt_was_cut_ungraded(verifier: MathVerifier) -> None:
    record, scorer, _ = grade([CUT, CUT], spec("drop"), verifier)
    assert record.level is None and record.attempts == [] and record.truncated == 2
    assert record.reason is not None and record.reason.startswith("no attempts: every sample was cut off")
    assert scorer.items == []


def test_finished_attempts_are_not_flagged(verifier: MathVerifier) -> None:
    record, _, stats = grade([WRONG, WRONG], spec(), verifier)
    assert record.truncated == 0 and stats.truncated == 0 and record.level is None
    assert not any(a.truncated for a in record.attempts)


# ----------------------------------------------------------------------------- PRM context overflow

#: ScriptedScorer reports a trace of more than six steps as cut to fit the PRM's context.
LONG = Sample("\n\n".join(f"s{i} score=0.{i + 1}" for i in range(8)) + "\n\nso \\boxed{5}", "stop")
SHORT = Sample("Add score=0.7, so \\boxed{5}", "stop")


@pytest.mark.parametrize(
    ("overflow", "attempt_scores", "score"),
    [
        ("truncate", [0.1, 0.7], pytest.approx(0.4)),  # the steps that fitted are scored and count
        ("skip", [None, 0.7], 0.7),  # the overflowing trace is left out of the question's score
    ],
)
def test_prm_overflow_policy_and_flags(
    verifier: MathVerifier, overflow: str, attempt_scores: list[float | None], score: Any
) -> None:
    record, _, stats = grade([LONG, SHORT], spec(onOverflow=overflow), verifier)
    assert [a.prm_truncated for a in record.attempts] == [True, False]
    assert [a.score for a in record.attempts] == attempt_scores
    assert record.prm_truncated is True and record.score == score
    assert stats.prm_truncated == 1 and len(record.attempts[0].step_scores or []) == 9


def test_skip_leaves_a_question_without_a_fitting_trace_ungraded(verifier: MathVerifier) -> None:
    record, _, _ = grade([LONG], spec(n=1, onOverflow="skip"), verifier)
    assert record.level is None and record.score is None and record.prm_truncated is True
    assert record.reason is not None and record.reason.startswith("no score")


def test_questions_the_prm_never_saw_carry_no_prm_flag(verifier: MathVerifier) -> None:
    solved, _, _ = grade([RIGHT, WRONG], spec(), verifier)
    short, _, _ = grade([SHORT, SHORT], spec(), verifier)
    assert solved.prm_truncated is None and [a.prm_truncated for a in solved.attempts] == [None, None]
    assert short.prm_truncated is False


# ----------------------------------------------------------------------------- pipeline, bank, status


def _write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_finish_reasons_from_responses_reach_records_summary_bank_and_table(tmp_path: Path) -> None:
    questions = [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)]
    responses = [
        {"id": "q0", "response": "so \\boxed{1}", "finish_reason": "stop"},  # solved
        {"id": "q1", "response": CUT.text, "finish_reason": "length"},  # cut: level 5 by default
        {"id": "q2", "response": LONG.text},  # no finish reason: not known to be cut; PRM-truncated
    ]
    resource = GradingRun.model_validate(
        {
            "kind": "GradingRun",
            "metadata": {"name": "cut"},
            "spec": {
                "questions": {"path": _write(tmp_path / "q.jsonl", questions), "fields": {"id": "id"}},
                "model": {"path": "/models/s"},
                "responses": {"path": _write(tmp_path / "r.jsonl", responses)},
                "sampling": {"samplesPerQuestion": 1},
                "grader": {"prm": PRM},
                "verification": {"workers": 1},
            },
        }
    )
    summary = run_grading_run(resource, tmp_path / "out", scorer=ScriptedScorer)
    records = {r.key: r for r in read_records(tmp_path / "out", GradedQuestion)}
    assert [records[k].attempts[0].finish_reason for k in ("q0", "q1", "q2")] == ["stop", "length", None]
    assert (records["q1"].level, records["q1"].truncated, records["q2"].prm_truncated) == (5, 1, True)
    assert (summary["truncated"], summary["prm_truncated"]) == (1, 1)
    assert "cut off 1" in figures("GradingRun", summary) and "PRM-truncated 1" in figures(
        "GradingRun", summary
    )

    bank = build_bank(
        [SourceRows("cut", "/models/s", list(records.values()))], model=None, dedupe=DedupeSpec()
    )
    flags = {e.question.id: (e.truncated, e.prm_truncated) for e in bank.entries}
    assert flags == {"q0": (0, None), "q1": (1, None), "q2": (0, True)}
    # Re-levelled with another run's cut points, the cut-off question stays at level 5 (it has no score).
    relevelled = build_bank(
        [SourceRows("cut", "/models/s", list(records.values()))],
        model=None,
        dedupe=DedupeSpec(),
        cuts=[0.05, 0.5, 0.6, 0.7],
    )
    assert {e.question.id: e.level for e in relevelled.entries} == {"q0": 0, "q1": 5, "q2": 4}


def test_bank_rows_written_before_the_flags_still_read() -> None:
    old = {"question": QUESTION.model_dump(), "level": 3, "model": "m", "origin": "o"}
    entry = BankEntry.model_validate(old)
    assert (entry.truncated, entry.prm_truncated) == (None, None)


def test_responses_finish_reasons_must_match_the_responses(tmp_path: Path) -> None:
    from adacot.api.grading_run import ResponsesSpec
    from adacot.pipelines.grading_run import load_responses

    path = _write(tmp_path / "r.jsonl", [{"id": "a", "response": ["x", "y"], "finish_reason": ["length"]}])
    with pytest.raises(ValueError, match="finish_reason"):
        load_responses(ResponsesSpec(path=path))
