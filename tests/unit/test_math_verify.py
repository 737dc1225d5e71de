"""The math Result-Verifier on real benchmark rows: equivalent rewrites pass, wrong ones fail.

Rows are read from ../shared/data (MATH-500, AIME 24/25, AMC 2023, GSM8K) and named in each test id,
e.g. `math500[7]`. The sweep at the end checks every gold answer against itself in a boxed response.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from typing import Any

import pytest
from shared_data import SHARED_DATA

import adacot.verify.math as math_verifier
from adacot.verify.math import verify_math
from adacot.verify.math_extract import gold_answer

DATA = SHARED_DATA
FILES = {
    "math500": "math500.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc2023": "amc2023.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
}


@cache
def rows(dataset: str) -> list[dict[str, str]]:
    path = DATA / FILES[dataset]
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path} (set ADACOT_SHARED_DATA)")
    return [json.loads(line) for line in path.read_text().splitlines()]


def gold(dataset: str, index: int) -> str:
    return str(rows(dataset)[index]["answer"])


# (dataset, row, answers equivalent to the gold, answers that are wrong). Chosen to cover each form
# the verifier must handle; the gold is shown in the comment.
TABLE: list[tuple[str, int, list[str], list[str]]] = [
    # \left( 3, \frac{\pi}{2} \right): polar point, a tuple (order matters)
    ("math500", 0, [r"(3, \pi/2)", r"\left(3,\dfrac{\pi}{2}\right)"], [r"(3, \pi)", r"(\frac{\pi}{2}, 3)"]),
    # \frac{14}{3}: fraction vs decimal, \dfrac, mixed number
    (
        "math500",
        2,
        ["14/3", r"\dfrac{14}{3}", r"4\frac{2}{3}", "4.666667"],
        [r"-\frac{14}{3}", r"\frac{3}{14}", "4.67"],
    ),
    # \text{Evelyn}: \text{} wrappers
    ("math500", 4, ["Evelyn", r"\textbf{Evelyn}", r"\text{ Evelyn }"], ["Navin"]),
    # 90^\circ: degrees in every spelling
    (
        "math500",
        7,
        ["90", r"90^{\circ}", "90°", "90 degrees", r"90\text{ degrees}", r"90^\circ."],
        [r"45^\circ", "180"],
    ),
    # x=5: assignment vs value
    ("math500", 23, ["5", "x = 5"], ["x=-5", "-5"]),
    # 1,-2: a list of roots, any order
    ("math500", 25, ["-2, 1", r"\{1,-2\}", r"1 \text{ and } -2"], ["1, 2", "1"]),
    # 3, 5, 7
    ("math500", 36, ["7,5,3", r"\{3, 5, 7\}"], ["3,5", "3,5,9"]),
    # (6,31,-1): an ordered triple
    ("math500", 60, ["(6, 31, -1)"], ["(6,-1,31)", "(6,31,1)"]),
    # 1 \pm \sqrt{19}
    (
        "math500",
        96,
        [r"1+\sqrt{19}, 1-\sqrt{19}", r"1-\sqrt{19},1+\sqrt{19}"],
        [r"1+\sqrt{19}", r"1 \pm \sqrt{17}"],
    ),
    # \text{east}
    ("math500", 97, ["East", r"\text{East}"], ["west"]),
    # column vector with fractions
    (
        "math500",
        99,
        [r"\begin{pmatrix} -\frac{1}{3} \\ \frac{2}{3} \\ \frac{5}{3} \end{pmatrix}"],
        [r"\begin{pmatrix} 2/3 \\ -1/3 \\ 5/3 \end{pmatrix}"],
    ),
    # (3,4]: half-open interval; swapped ends and other brackets are wrong
    ("math500", 103, ["(3, 4]"], ["[3,4)", "(4,3]", "(3,4)"]),
    # \dfrac{17}{50}: percent
    ("math500", 162, ["0.34", r"34\%", r"\frac{17}{50}"], ["0.35", r"\frac{50}{17}"]),
    # \frac{270}7\text{ degrees}
    ("math500", 166, [r"\frac{270}{7}", r"\frac{270}{7}^\circ", "270/7"], [r"\frac{270}{11}"]),
    # 5x - 7y + 11z + 4 = 0: a plane, any scaling
    ("math500", 179, ["-5x + 7y - 11z - 4 = 0", "10x - 14y + 22z + 8 = 0"], ["5x - 7y + 11z - 4 = 0"]),
    # (2,\infty): interval vs inequality
    ("math500", 184, [r"(2, \infty)", "x>2"], [r"[2,\infty)", r"(-\infty, 2)"]),
    # 10,\!080: thousands separators
    ("math500", 198, ["10080", "10,080", "10{,}080"], ["10800", "10,800"]),
    ("math500", 217, ["11111111100", "11,111,111,100"], ["11111111000"]),
    # \left( \frac{3}{2}, -13 \right)
    ("math500", 206, ["(1.5, -13)", r"\left(\frac32,-13\right)"], [r"(-13, \frac32)"]),
    # \text{(C)}: multiple choice
    ("math500", 227, ["C", "(C)", r"\textbf{(C)}"], ["(D)", "D"]),
    # \$32,\!348: currency and units
    ("math500", 242, ["32348", r"\$32,348", "32,348 dollars"], ["32384"]),
    # 2x2 matrix, pmatrix vs bmatrix
    (
        "math500",
        248,
        [r"\begin{bmatrix} -1 & 0 \\ 0 & -1 \end{bmatrix}"],
        [r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}"],
    ),
    # 1\frac{4}{5}: a mixed number is a sum, not a product
    ("math500", 264, [r"\frac{9}{5}", "1.8"], [r"\frac{4}{5}", "1.4"]),
    # \left(\frac{3}{5},\frac{8}{3}\right]
    (
        "math500",
        293,
        ["(0.6, 8/3]", r"\left(\dfrac35,\dfrac83\right]"],
        [r"[\frac35, \frac83)", r"\left(\frac{3}{5},\frac{8}{3}\right)"],
    ),
    # 5.4 \text{ cents}
    ("math500", 301, ["5.4", "5.4 cents", "5.40"], ["54", "5.5"]),
    # (-\infty, 0]
    ("math500", 307, [r"(-\infty,0]", r"x \le 0"], [r"(-\infty, 0)", r"[0,\infty)"]),
    # 9\% ... \frac{9}{100}
    ("math500", 326, ["0.09", r"9\%"], ["0.9", r"90\%"]),
    # 58,500
    ("math500", 343, ["58500", "58{,}500", r"\$58,500"], ["58000", "5850"]),
    # (0,9) \cup (9,36): union of intervals, any order
    ("math500", 380, [r"(9,36) \cup (0,9)", r"(0, 9)\cup(9, 36)"], ["(0,36)", r"(0,9) \cup (9,35)"]),
    # x \in [-2,7]
    ("math500", 383, ["[-2,7]", "[-2, 7]", r"-2 \le x \le 7"], ["[-7,2]", "(-2,7)"]),
    # \{1\pm\sqrt{5},-2\}: a set, reordered
    (
        "math500",
        422,
        [r"-2, 1+\sqrt5, 1-\sqrt5", r"\{-2, 1-\sqrt{5}, 1+\sqrt{5}\}"],
        [r"-2, 1+\sqrt5", r"2, 1+\sqrt5, 1-\sqrt5"],
    ),
    ("math500", 431, [r"[\pi^2/8, 5\pi^2/4]"], [r"(\pi^2/8, 5\pi^2/4)", r"[\pi^2/4, 5\pi^2/8]"]),
    ("math500", 435, [r"(3,\infty)\cup(-\infty,2)"], ["(2,3)", r"(-\infty, 2] \cup [3, \infty)"]),
    # y = 2x + 3: a line
    ("math500", 454, ["2x+3", "y=3+2x"], ["y=2x-3", "y=3x+2"]),
    ("math500", 459, ["18.9", "18.90", r"\$18.90"], ["18.09", "19.80"]),
    ("math500", 472, ["137.5", r"\frac{275}{2}"], ["137", r"\frac{137}{2}"]),
    ("math500", 488, ["36", "36 dollars", r"\$36.00"], ["63", "-36"]),
    ("math500", 17, [r"\pi", "3.14159265"], ["3.14", r"2\pi"]),
    # AIME / AMC: integers, leading zeros, thousands, signs
    ("aime24", 15, ["73", "073"], ["37", "74"]),
    ("aime24", 0, ["204", "204.0"], ["2040", "-204"]),
    ("aime25", 0, ["70"], ["7", "71"]),
    ("amc2023", 3, ["3159", "3,159"], ["3195"]),
    ("amc2023", 15, ["-1"], ["1"]),
    # GSM8K: the reference is a solution ending in "#### n"
    ("gsm8k", 0, ["18", r"\$18", "18 dollars", "18.00"], ["19", "-18", "1.8"]),
    ("gsm8k", 611, ["1450000", "1,450,000", r"\$1,450,000"], ["1,450", "145000"]),
    ("gsm8k", 489, ["-10"], ["10"]),
]

# Response shapes the rewritten answer is placed in: reasoning, R1's </think>, then the answer.
SHAPES = [
    "Let me work through it. Maybe \\boxed{0}?\n</think>\n\nSo the answer is $\\boxed{%s}$.",
    "<think>\nFirst try: \\boxed{0}. Hmm.\n</think>\nThe final answer is $%s$.",
]


def _cases(kind: str) -> list[Any]:
    out: list[Any] = []
    for dataset, index, equivalents, wrongs in TABLE:
        for answer in equivalents if kind == "equivalent" else wrongs:
            for s, shape in enumerate(SHAPES):
                out.append(
                    pytest.param(dataset, index, shape % answer, id=f"{dataset}[{index}]:{answer}:shape{s}")
                )
    return out


@pytest.mark.parametrize(("dataset", "index", "response"), _cases("equivalent"))
def test_equivalent_rewrites_pass(dataset: str, index: int, response: str) -> None:
    verdict = verify_math(response, gold(dataset, index))
    assert (verdict.correct, verdict.reason) == (True, "equivalent"), verdict


@pytest.mark.parametrize(("dataset", "index", "response"), _cases("wrong"))
def test_wrong_answers_fail(dataset: str, index: int, response: str) -> None:
    verdict = verify_math(response, gold(dataset, index))
    assert (verdict.correct, verdict.reason) == (False, "not_equivalent"), verdict


def test_gsm8k_hash_answer_against_gsm8k_gold() -> None:
    response = "Janet has 16 - 3 - 4 = 9 eggs, sold at $2: 9 * 2 = 18.\n#### 18"
    verdict = verify_math(response, gold("gsm8k", 0))
    assert verdict == verdict.model_copy(update={"correct": True, "reason": "equivalent", "extracted": "18"})


def test_extracted_answer_and_method_are_reported() -> None:
    verdict = verify_math(r"</think> Thus $\boxed{\dfrac{14}{3}}$.", gold("math500", 2))
    assert verdict.extracted == r"\dfrac{14}{3}"
    assert verdict.detail == "answer found by boxed"


def test_last_number_fallback_is_flagged() -> None:
    verdict = verify_math("She sells 9 eggs at $2 each, making 18", gold("gsm8k", 0))
    assert (verdict.correct, verdict.extracted) == (True, "18")
    assert verdict.detail is not None and "last number" in verdict.detail


def test_no_answer() -> None:
    truncated = "<think>Let me compute 16 - 3 - 4 = 9, then 9 * 2 = \\boxed{18}... wait"
    for response in ("I do not know.", truncated):
        verdict = verify_math(response, gold("gsm8k", 0))
        assert (verdict.correct, verdict.reason) == (False, "no_answer")


@pytest.mark.parametrize("bad_gold", ["", "   ", r"\boxed{}"])
def test_unparseable_gold_is_undecided(bad_gold: str) -> None:
    verdict = verify_math(r"\boxed{5}", bad_gold)
    assert (verdict.correct, verdict.reason, verdict.extracted) == (None, "gold_unparseable", "5")


def test_internal_error_becomes_error_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bool:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(math_verifier, "verify", broken)
    verdict = verify_math(r"\boxed{5}", "5")
    assert (verdict.correct, verdict.reason, verdict.extracted) == (None, "error", "5")
    assert verdict.detail is not None and "RecursionError" in verdict.detail


@pytest.mark.timeout(60)
def test_in_process_soft_timeout_on_exponent_tower() -> None:
    verdict = verify_math(r"\boxed{9^{9^{9^{9^{9}}}}}", "5", timeout_s=0.5)
    assert (verdict.correct, verdict.reason, verdict.extracted) == (None, "timeout", "9^{9^{9^{9^{9}}}}")
    # the SIGALRM handler is gone afterwards: a normal call still works
    assert verify_math(r"\boxed{1/2}", "0.5").correct is True


def test_works_off_the_main_thread() -> None:
    # math-verify's own SIGALRM timeout raises in threads; ours steps aside there.
    results = []
    thread = threading.Thread(target=lambda: results.append(verify_math(r"\boxed{\frac12}", "0.5")))
    thread.start()
    thread.join()
    assert results[0].correct is True


def test_sweep_every_gold_verifies_against_itself_boxed() -> None:
    """Every MATH-500/AIME/AMC/GSM8K gold answer, boxed after </think>, is equivalent to itself."""
    failures, total = [], 0
    for dataset in FILES:
        for index, row in enumerate(rows(dataset)):
            reference = str(row["answer"])
            response = (
                "Reasoning... \\boxed{0}\n</think>\nSo the answer is $\\boxed{"
                + gold_answer(reference)
                + "}$."
            )
            verdict = verify_math(response, reference)
            total += 1
            if verdict.correct is not True:
                failures.append(f"{dataset}[{index}] {reference[-60:]!r}: {verdict.reason}")
    assert total == 500 + 30 + 30 + 40 + 1319
    assert failures == [], f"{len(failures)}/{total} gold answers fail against themselves:\n" + "\n".join(
        failures
    )
