"""Decontamination by word n-grams (adacot.stages.decontaminate) with real MATH-500 rows."""

from __future__ import annotations

import json

import pytest
from shared_data import MATH500

from adacot.api.common import TaskType
from adacot.artifacts.rows import Question
from adacot.stages.decontaminate import BenchmarkIndex, BenchmarkItem, ngrams, normalise_words


def math500(limit: int) -> list[BenchmarkItem]:
    with MATH500.open() as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(limit), strict=False)]
    return [BenchmarkItem("math500", f"m{i}", r["problem"]) for i, r in enumerate(rows)]


def q(text: str, qid: str = "x") -> Question:
    return Question(id=qid, task=TaskType.math, problem=text, answer="1", source="pool")


def test_normalised_words_ignore_case_latex_spacing_and_symbols() -> None:
    assert normalise_words("Find $x^2\\,+\\;1$ IF x=3") == normalise_words("find x^{2} + 1 if x = 3")
    assert ngrams(("a", "b", "c"), 2) == {("a", "b"), ("b", "c")} and ngrams(("a",), 2) == set()


@pytest.mark.parametrize(
    ("threshold", "edit", "contaminated"),
    [
        (0.0, lambda p: p, True),  # verbatim copy
        (0.0, lambda p: "Reworded: " + p.upper().replace("  ", " "), True),  # case and prefix do not hide it
        (0.0, lambda p: "A brand new question about seven apples and three pears in a basket.", False),
        (
            0.9,
            lambda p: " ".join(p.split()[: len(p.split()) // 2]) + " and then something else entirely",
            False,
        ),
        (
            0.3,
            lambda p: " ".join(p.split()[: len(p.split()) // 2]) + " and then something else entirely",
            True,
        ),
    ],
)
def test_planted_math500_rows_are_caught(threshold: float, edit: object, contaminated: bool) -> None:
    bench = math500(50)
    index = BenchmarkIndex(bench, n=8, threshold=threshold)
    problem = bench[7].problem
    assert callable(edit)
    hit = index.check(q(edit(problem)))
    assert (hit is not None) is contaminated
    if hit is not None:
        assert (hit.benchmark, hit.benchmark_id) == ("math500", "m7")
        assert 0 < hit.overlap <= 1 and len(hit.ngram.split()) == 8
        assert hit.ngram in " ".join(normalise_words(problem))


def test_short_questions_match_only_as_a_whole() -> None:
    index = BenchmarkIndex([BenchmarkItem("b", "1", "Compute 2 + 2.")], n=8)
    assert index.check(q("compute 2+2")) is not None
    assert index.check(q("Compute 2 + 3.")) is None


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BenchmarkIndex([], n=8, threshold=1.0)
