"""The grading stage's logic (adacot.stages.grade, prompts, progress) with scripted engines and the real
Result-Verifiers: solved rules, unverifiable references, PRM and code fallback scores, pre-generated
responses, the two-phase level assignment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from grading_scripted import ScriptedGenerator, ScriptedScorer, table_answers

from adacot.api.common import TaskType
from adacot.api.generation import PromptSpec
from adacot.api.grading_run import GradingRunSpec, LevelMapping
from adacot.artifacts.rows import GradedQuestion, Question
from adacot.backends.base import Sample
from adacot.progress.meter import ProgressMeter, ProgressUpdate
from adacot.stages.grade import (
    PENDING_LEVEL,
    GradeStats,
    assign_levels,
    grade_chunk,
)
from adacot.stages.prompts import DEFAULT_INSTRUCTIONS, build_prompt
from adacot.verify.code import CodeVerifier
from adacot.verify.math import MathVerifier

PRM = {"model": {"path": "/models/prm"}}


def spec(**fields: Any) -> GradingRunSpec:
    base: dict[str, Any] = {"questions": {"path": "q.jsonl"}, "model": {"path": "/models/s"}}
    grader = fields.pop("grader", {"prm": PRM})
    return GradingRunSpec.model_validate({**base, "grader": grader, **fields})


def math_q(qid: str, answer: str = "4", problem: str | None = None) -> Question:
    return Question(
        id=qid,
        task=TaskType.math,
        problem=problem or f"Question {qid}: what is 2+2?",
        answer=answer,
        source="t",
    )


@pytest.fixture(scope="module")
def math_verifier() -> Iterator[MathVerifier]:
    with MathVerifier(workers=1, timeout_s=10) as verifier:
        yield verifier


def grade_one(
    question: Question,
    texts: list[str],
    run: GradingRunSpec,
    verifier: Any,
    scorer: ScriptedScorer | None = None,
) -> GradedQuestion:
    gen = ScriptedGenerator(table_answers({question.problem: texts}))
    (record,) = grade_chunk(
        [question], run, verifier, generator=gen, scorer=(lambda: scorer) if scorer else None
    )
    return record


RIGHT, WRONG = "so \\boxed{4}", "so \\boxed{5}"


@pytest.mark.parametrize(
    ("rule", "threshold", "texts", "solved", "rate"),
    [
        ("any", 0.5, [WRONG, WRONG, RIGHT, WRONG], True, 0.25),
        ("any", 0.5, [WRONG] * 4, False, 0.0),
        ("majority", 0.5, [RIGHT, RIGHT, WRONG, WRONG], False, 0.5),  # 2 of 4 is not a majority
        ("majority", 0.5, [RIGHT, RIGHT, RIGHT, WRONG], True, 0.75),
        ("threshold", 0.75, [RIGHT, RIGHT, WRONG, WRONG], False, 0.5),
        ("threshold", 0.5, [RIGHT, RIGHT, WRONG, WRONG], True, 0.5),
    ],
)
def test_solved_rules(
    math_verifier: MathVerifier, rule: str, threshold: float, texts: list[str], solved: bool, rate: float
) -> None:
    run = spec(
        sampling={"samplesPerQuestion": 4},
        grader={"prm": PRM, "solvedRule": rule, "solvedThreshold": threshold},
    )
    record = grade_one(math_q("a"), texts, run, math_verifier, ScriptedScorer())
    assert (record.solved, record.pass_rate) == (solved, rate)
    assert [a.verdict.correct for a in record.attempts if a.verdict] == [t == RIGHT for t in texts]
    if solved:
        assert record.level == 0 and record.reason is None
    else:
        assert record.level is None and record.reason == PENDING_LEVEL and record.score is not None


def test_prm_scores_only_wrong_samples_and_aggregates(math_verifier: MathVerifier) -> None:
    run = spec(
        sampling={"samplesPerQuestion": 3},
        grader={"prm": {**PRM, "aggregation": "min", "sampleAggregation": "mean"}, "solvedRule": "majority"},
    )
    texts = ["a score=0.9\n\nb score=0.3\n\n" + WRONG, "a score=0.8\n\n" + WRONG, "x score=0.1\n\n" + RIGHT]
    scorer = ScriptedScorer()
    record = grade_one(math_q("p"), texts, run, math_verifier, scorer)
    assert len(scorer.items) == 2  # the right sample is not scored
    # The last step (the boxed answer) has no score= tag: the scorer gives step j 1 / (j + 2).
    assert [a.step_scores for a in record.attempts] == [[0.9, 0.3, 0.25], [0.8, pytest.approx(1 / 3)], None]
    assert [a.score for a in record.attempts] == [0.25, pytest.approx(1 / 3), None]
    assert record.score == pytest.approx((0.25 + 1 / 3) / 2) and record.solved is False


def test_scorer_is_not_built_when_everything_is_solved(math_verifier: MathVerifier) -> None:
    built: list[int] = []

    def factory() -> ScriptedScorer:
        built.append(1)
        return ScriptedScorer()

    gen = ScriptedGenerator(table_answers({"Question": [RIGHT]}))
    records = grade_chunk([math_q("s1"), math_q("s2")], spec(), math_verifier, generator=gen, scorer=factory)
    assert [r.level for r in records] == [0, 0] and built == []


@pytest.mark.parametrize(
    ("answer", "samples", "reason_start"),
    [
        ("\\text{}", [Sample("\\boxed{4}", "stop")], "unverifiable reference: gold_unparseable"),
        (
            "4",
            [Sample("", "error", error="HTTP 500 after 6 retries")] * 2,
            "undecided: no sample could be verified (generation_error x2)",
        ),
    ],
)
def test_unverifiable_questions_are_reported_not_graded(
    math_verifier: MathVerifier, answer: str, samples: list[Sample], reason_start: str
) -> None:
    question = math_q("u", answer=answer)
    gen = ScriptedGenerator(lambda text, n: samples)
    stats = GradeStats()
    (record,) = grade_chunk(
        [question],
        spec(sampling={"samplesPerQuestion": len(samples)}),
        math_verifier,
        generator=gen,
        scorer=ScriptedScorer,
        stats=stats,
    )
    assert record.level is None and record.solved is None and record.reason is not None
    assert record.reason.startswith(reason_start)
    assert stats.questions == 1 and stats.attempts == len(samples)


def test_pass_rate_method_scores_by_rate(math_verifier: MathVerifier) -> None:
    run = spec(sampling={"samplesPerQuestion": 4}, grader={"method": "passRate", "solvedRule": "majority"})
    record = grade_one(math_q("r"), [RIGHT, WRONG, WRONG, WRONG], run, math_verifier)
    assert record.pass_rate == 0.25 and record.score == 0.5  # 0.25 of the 0.5 a majority needs
    assert all(a.step_scores is None for a in record.attempts)


def test_code_without_prm_scores_share_of_tests_passed() -> None:
    tests = {"entry_point": "f", "inputs": [[1], [2], [3], [4]], "outputs": [2, 4, 6, 8]}
    question = Question(
        id="c", task=TaskType.code, problem="Write f(x) returning 2x.", tests=tests, source="t"
    )
    half = "```python\ndef f(x):\n    return 2 * x if x < 3 else 0\n```"
    none = "```python\ndef f(x):\n    return -1\n```"
    run = spec(questions={"path": "q.jsonl", "task": "code"}, grader={}, sampling={"samplesPerQuestion": 2})
    with CodeVerifier(workers=1) as verifier:
        record = grade_one(question, [half, none], run, verifier)
    assert [a.verdict.reason for a in record.attempts if a.verdict] == ["failed_test", "failed_test"]
    assert [a.score for a in record.attempts] == [0.5, 0.0]
    assert record.score == 0.25 and record.reason == PENDING_LEVEL


def test_pre_generated_responses(math_verifier: MathVerifier) -> None:
    questions = [math_q("g1"), math_q("g2"), math_q("g3")]
    responses = {"g1": [RIGHT], "g2": [WRONG, RIGHT]}
    records = grade_chunk(questions, spec(), math_verifier, responses=responses, scorer=ScriptedScorer)
    assert [r.solved for r in records] == [True, True, None]
    assert [len(r.attempts) for r in records] == [1, 2, 0]
    assert records[2].reason == "no attempts: no response for this question"
    assert records[1].attempts[1].finish_reason is None  # unknown for pre-generated text


def test_generator_prompts_follow_prompt_spec(math_verifier: MathVerifier) -> None:
    gen = ScriptedGenerator(table_answers({"Question": [RIGHT]}))
    run = spec(prompt={"system": "Be brief.", "useChatTemplate": True})
    grade_chunk([math_q("x")], run, math_verifier, generator=gen)
    (prompt,) = gen.prompts
    assert prompt.messages[0] == ("system", "Be brief.")
    assert prompt.messages[1][1].endswith(DEFAULT_INSTRUCTIONS[TaskType.math])


def test_prompt_instruction_not_repeated_and_text_mode() -> None:
    already = math_q(
        "m", problem="Solve x.\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    chat = build_prompt(already, PromptSpec())
    assert chat.messages == (("user", already.problem),)
    text = build_prompt(
        math_q("t", problem="Solve y."),
        PromptSpec(system="S", instruction="Answer: N", use_chat_template=False),
    )
    assert text.text == "S\n\nSolve y.\nAnswer: N"


def pending(qid: str, score: float) -> GradedQuestion:
    return GradedQuestion(
        question=math_q(qid), solved=False, pass_rate=0.0, score=score, reason=PENDING_LEVEL
    )


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (LevelMapping(), [1, 1, 1, 1, 1, 3, 4, 5, 5, 5]),  # fixed bins 0.2/0.4/0.6/0.8
        (LevelMapping(mode="quantiles"), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),  # five equal groups
    ],
)
def test_phase_two_assigns_levels(mapping: LevelMapping, expected: list[int]) -> None:
    scores = [0.95, 0.9, 0.85, 0.82, 0.81, 0.5, 0.3, 0.1, 0.05, 0.01]
    records = [pending(f"q{i}", s) for i, s in enumerate(scores)]
    solved = GradedQuestion(question=math_q("solved"), solved=True, pass_rate=1.0, level=0)
    done = assign_levels([*records, solved], mapping)
    assert [r.level for r in done] == [*expected, 0]
    assert all(r.reason is None for r in done)


def test_progress_rate_and_eta_with_a_resumed_start() -> None:
    now = [100.0]
    seen: list[ProgressUpdate] = []
    meter = ProgressMeter(10, seen.append, done=4, clock=lambda: now[0])
    now[0] = 102.0
    meter.advance(2)
    report = seen[-1]
    assert (report.done, report.total, report.rate, report.eta_seconds) == (6, 10, 1.0, 4.0)
    assert seen[0].rate is None and seen[0].percent == 40.0
    with pytest.raises(ValueError, match="done"):
        ProgressMeter(3, done=4)
