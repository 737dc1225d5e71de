"""The distillation stage over rows, with a scripted teacher and the real math Result-Verifier: keep
policies, rounds until one verifies, what is never kept and why, seeds, decontamination."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from distill_helpers import ScriptedTeacher, entry, r1, sum_bank, sum_rule

from adacot.api.distillation_job import FilterSpec, TeacherSpec
from adacot.api.generation import VerificationSpec
from adacot.backends.base import Sample
from adacot.stages.decontaminate import BenchmarkIndex, BenchmarkItem
from adacot.stages.distill import (
    DistillStats,
    Verifiers,
    decontaminate,
    derive_seed,
    distill_chunk,
)

Q = entry("q1", "What is 2 + 2?", "4", level=3, source="arith")
RIGHT, WRONG = r1("two and two", "\\boxed{4}"), r1("two and two", "\\boxed{5}")


@pytest.fixture(scope="module")
def verifiers() -> Iterator[Verifiers]:
    made = Verifiers(VerificationSpec(workers=1))
    yield made
    made.close()


def teacher(**overrides: object) -> TeacherSpec:
    spec = {"endpoint": {"url": "http://127.0.0.1:9/v1", "model": "t"}, **overrides}
    return TeacherSpec.model_validate(spec)


def scripted(rounds: list[list[Sample]]) -> ScriptedTeacher:
    """Round r of every prompt gets rounds[r] (as many samples as given, whatever n asks)."""
    return ScriptedTeacher(lambda text, r, n: rounds[r])


def run(gen: ScriptedTeacher, verifiers: Verifiers, filters: FilterSpec | None = None, **spec: object):  # type: ignore[no-untyped-def]
    records = distill_chunk([Q], teacher(**spec), filters or FilterSpec(), gen, verifiers)
    assert len(records) == 1
    return records[0]


def test_keep_first_takes_the_lowest_correct_sample(verifiers: Verifiers) -> None:
    right_long = r1("long way round", "\\boxed{4}", tokens=99)
    record = run(scripted([[WRONG, right_long, RIGHT]]), verifiers, keep="first")
    assert record.outcomes == ["wrong:not_equivalent", "kept", "correct_not_kept"]
    assert [t.attempt for t in record.kept] == [2] and record.rounds == 1
    trace = record.kept[0]
    assert trace.text == "<think>\nlong way round\n</think>\n\n\\boxed{4}" and trace.verdict.correct
    assert (trace.level, trace.source, trace.completion_tokens) == (3, "arith", 99)
    assert trace.prompt.startswith("What is 2 + 2?\n") and "\\boxed{}" in trace.prompt


def test_keep_shortest_and_all(verifiers: Verifiers) -> None:
    samples = [r1("a", "\\boxed{4}", tokens=50), WRONG, r1("b", "\\boxed{4}", tokens=20)]
    shortest = run(scripted([samples]), verifiers, keep="shortest")
    assert [t.attempt for t in shortest.kept] == [3]
    assert shortest.outcomes == ["correct_not_kept", "wrong:not_equivalent", "kept"]
    everything = run(scripted([samples]), verifiers, keep="all")
    assert [t.attempt for t in everything.kept] == [1, 3]


def test_rounds_until_one_verifies(verifiers: Verifiers) -> None:
    gen = scripted([[WRONG], [WRONG], [RIGHT], [RIGHT]])
    record = run(gen, verifiers, maxAttempts=4)
    assert record.rounds == 3 and [a.sample for a in record.attempts] == [0, 1, 2]
    assert record.outcomes == ["wrong:not_equivalent", "wrong:not_equivalent", "kept"]
    assert record.kept[0].attempt == 3 and len(gen.prompts) == 3
    seeds = [p.seed for p in gen.prompts]
    assert seeds == [derive_seed(0, "q1", r) for r in range(3)] and len(set(seeds)) == 3

    gave_up = run(scripted([[WRONG], [WRONG], [RIGHT]]), verifiers, maxAttempts=2)
    assert (gave_up.rounds, gave_up.accepted, len(gave_up.attempts)) == (2, False, 2)


def test_truncated_outputs_are_never_kept(verifiers: Verifiers) -> None:
    cut = r1("two and two", "\\boxed{4}", finish="length")  # right answer, but cut by max tokens
    record = run(scripted([[cut], [cut]]), verifiers, maxAttempts=2)
    assert record.outcomes == ["truncated", "truncated"] and not record.kept
    assert all(a.verdict is None for a in record.attempts)  # not even sent to the verifier


def test_max_tokens_filter(verifiers: Verifiers) -> None:
    long_right = r1("a very long chain", "\\boxed{4}", tokens=500)
    record = run(scripted([[long_right, RIGHT]]), verifiers, FilterSpec(max_tokens=100), keep="all")
    assert record.outcomes == ["too_long", "kept"] and [t.attempt for t in record.kept] == [2]


def test_require_reasoning(verifiers: Verifiers) -> None:
    bare = Sample(text="\\boxed{4}", finish_reason="stop", completion_tokens=3)
    strict = run(scripted([[bare]]), verifiers, maxAttempts=1)
    assert strict.outcomes == ["no_reasoning"] and not strict.kept
    lenient = run(scripted([[bare]]), verifiers, FilterSpec(require_reasoning=False), maxAttempts=1)
    assert lenient.outcomes == ["kept"]
    assert lenient.kept[0].text == "<think>\n\n</think>\n\n\\boxed{4}"


def test_reasoning_content_and_failed_requests(verifiers: Verifiers) -> None:
    separate = Sample(text="So \\boxed{4}.", finish_reason="stop", reasoning="2+2=4", completion_tokens=4)
    failed = Sample(text="", finish_reason="error", error="HTTP 500 (after 7 attempts)")
    record = run(scripted([[failed, separate]]), verifiers, keep="all")
    assert record.outcomes == ["generation_error", "kept"]
    assert record.kept[0].text == "<think>\n2+2=4\n</think>\n\nSo \\boxed{4}."
    assert record.attempts[1].reasoning == "2+2=4"


def test_a_chunk_keeps_order_and_counts(verifiers: Verifiers) -> None:
    bank = sum_bank(6)
    stats = DistillStats()
    gen = ScriptedTeacher(sum_rule)
    records = distill_chunk(bank, teacher(maxAttempts=3), FilterSpec(), gen, verifiers, stats)
    assert [r.question_id for r in records] == [e.question.id for e in bank]
    assert all(r.accepted for r in records)
    assert [r.rounds for r in records] == [1, 2, 1, 2, 1, 2]  # odd A is right on round 2 only
    assert stats.as_dict() == {
        "questions": 6, "accepted": 6, "samples": 9, "kept_samples": 6, "rounds": 9,
        "outcomes": {"kept": 6, "wrong:not_equivalent": 3},
    }  # fmt: skip
    assert len(gen.prompts) == 9  # round 2 asked only for the three questions still open


def test_decontamination_removes_benchmark_questions() -> None:
    bank = [
        entry("a", "Find the sum of all positive divisors of 36 that are also perfect squares.", "50"),
        entry("b", "What is 2 + 2?", "4"),
    ]
    index = BenchmarkIndex(
        [
            BenchmarkItem(
                "math500", "m1", "find the SUM of all positive divisors of 36, that are also perfect"
            )
        ],
        n=8,
    )
    clean, removed = decontaminate(bank, index)
    assert [e.question.id for e in clean] == ["b"]
    assert removed[0].question_id == "a" and removed[0].benchmark_id == "m1"
    assert decontaminate(bank, None) == (bank, [])
