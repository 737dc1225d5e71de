"""The math Result-Verifier reads the final answer of a long reasoning trace as a careful grader would.

Each case is a shape seen in real R1 / QwQ / Sky-T1 / Qwen3 outputs (benchmarks/data/answer_traces.jsonl
holds the real traces these were drawn from): the answer comes after the reasoning, a trace cut off
inside its reasoning has none, an unboxed final statement is read whole, and ordinals, scientific
notation, units and trailing conditions compare by their mathematical content.
"""

from __future__ import annotations

import pytest

from adacot.verify.math import verify_math
from adacot.verify.math_extract import Extraction, extract_answer, why_no_answer

SKY = (
    "<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n"
    "<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>"
)


def _sky(thought: str, solution: str) -> str:
    return SKY.format(thought=thought, solution=solution)


# --------------------------------------------------------------------- where the answer is read


@pytest.mark.parametrize(
    ("response", "text", "method"),
    [
        # Sky-T1 / Bespoke-Stratos: a draft box in the thought, the answer in the solution
        (_sky(r"Maybe \boxed{7}? Let me check.", r"Thus the answer is \(\boxed{8}\)."), "8", "boxed"),
        # the solution states its answer without a box: the thought's box is still only a draft
        (_sky(r"**Final Answer**\n\boxed{7}", "The answer is 8."), "8", "answer_phrase"),
        # a solution the length limit cut before <|end_of_solution|> still counts
        ("<|begin_of_thought|>\nx\n<|end_of_thought|>\n<|begin_of_solution|>\nSo \\boxed{12}", "12", "boxed"),
        # only the thought's end marker (a template that prefills <|begin_of_thought|>)
        ("working... \\boxed{1}\n<|end_of_thought|>\n\nThe final answer is $2$.", "2", "answer_phrase"),
        # R1 with a chat end token after the answer
        ("<think>\n\\boxed{0}\n</think>\n\nSo $\\boxed{4.5}$<|im_end|>", "4.5", "boxed"),
    ],
    ids=["sky-solution-box", "sky-solution-phrase", "sky-solution-unterminated", "sky-end-only", "r1-im-end"],
)
def test_the_answer_is_taken_after_the_reasoning(response: str, text: str, method: str) -> None:
    assert extract_answer(response) == Extraction(text, method)  # type: ignore[arg-type]


CUT_OFF = [
    "<think>\nSo 16 - 3 - 4 = 9 and 9 * 2 = 18, i.e. \\boxed{18}. Wait, let me",
    "<think>\nThe final answer is \\boxed{}. Hmm, first I need",
    "<|begin_of_thought|>\n\nOkay. 2+2 is \\boxed{4}, so the answer is 4. But",
    "<|begin_of_thought|>\n\nDone.\n<|end_of_thought|>\n\n",  # thought closed, solution never begun
]


@pytest.mark.parametrize("response", CUT_OFF, ids=["r1-box", "r1-empty-box", "sky-box", "sky-no-solution"])
def test_a_trace_cut_off_inside_its_reasoning_has_no_answer(response: str) -> None:
    verdict = verify_math(response, "18" if "18" in response else "4")
    assert (verdict.correct, verdict.reason, verdict.extracted) == (False, "no_answer", None)
    assert verdict.detail is not None and "no final answer" in verdict.detail
    assert "reasoning" in verdict.detail


def test_the_reason_names_the_unclosed_marker() -> None:
    assert "<think>" in why_no_answer("<think>\nstill thinking 42")
    assert "<|begin_of_thought|>" in why_no_answer("<|begin_of_thought|>\nstill thinking 42")
    assert "after the reasoning" in why_no_answer("<think>\nthe answer is 42\n</think>\n")


@pytest.mark.parametrize(
    "response",
    [
        "</think>\n\nThe answer is \\boxed{}.",
        "</think>\n\nThe answer is $\\boxed{ }$",
        "</think>\n\n2 + 2 = 4, so the result is \\boxed{\\,}",
    ],
    ids=["empty", "blank", "thin-space"],
)
def test_an_empty_box_is_never_an_answer(response: str) -> None:
    verdict = verify_math(response, "4")
    assert (verdict.correct, verdict.reason, verdict.extracted) == (False, "no_answer", None)
    assert verdict.detail is not None and "empty" in verdict.detail


# --------------------------------------------------------------------- unboxed final statements


@pytest.mark.parametrize(
    ("response", "gold", "correct", "extracted"),
    [
        (r"</think> So the probability is $P = \frac{1}{8}$.", r"\frac{1}{8}", True, r"P = \frac{1}{8}"),
        (r"</think> So the probability is $P = \frac{1}{8}$.", "8", False, r"P = \frac{1}{8}"),
        (r"</think> Therefore the ratio is \(\frac{3}{4}\)", "0.75", True, r"\frac{3}{4}"),
        ("</think>\n\nHence\n\\[\nx = -\\frac{7}{2}\n\\]", "-3.5", True, r"x = -\frac{7}{2}"),
        (r"</think> The total area equals 2\sqrt{3} + 4.", r"4+2\sqrt{3}", True, r"2\sqrt{3} + 4"),
        (r"</think> The total area equals 2\sqrt{3} + 4.", "4", False, r"2\sqrt{3} + 4"),
    ],
    ids=["dollar-eq", "dollar-eq-not-last-number", "paren", "display", "prose-equals", "prose-not-4"],
)
def test_an_unboxed_final_statement_is_read_whole(
    response: str, gold: str, correct: bool, extracted: str
) -> None:
    verdict = verify_math(response, gold)
    assert (verdict.correct, verdict.extracted) == (correct, extracted), verdict
    assert verdict.detail == "answer found by final_statement"


def test_the_last_number_is_only_a_flagged_last_resort() -> None:
    verdict = verify_math("I counted the apples and got 12 of them, then 3 more make 15", "15")
    assert (verdict.correct, verdict.extracted) == (True, "15")
    assert verdict.detail is not None and "last number" in verdict.detail


# --------------------------------------------------------------------- a careful grader's equivalences


EQUIVALENT = [
    # ordinals
    ("2nd", "2"),
    ("3^{\\text{rd}}", "3"),
    ("\\text{3rd}", "3"),
    ("11^{th}", "11"),
    ("21st", "21"),
    ("3rd place", "3"),
    # scientific notation, both ways
    ("3.83e35", "3.83 \\times 10^{35}"),
    ("3.83 \\times 10^{35}", "3.83e35"),
    ("1.5e-3", "0.0015"),
    ("6.02 \\cdot 10^{23}", "6.02E+23"),
    ("3.83×10^35", "3.83e35"),
    # units in text
    ("5 cm^2", "5"),
    ("7 km/h", "7"),
    ("5\\text{ meters}", "5"),
    ("\\$12 dollars", "12"),
    ("12 \\text{ dollars}", "\\$12"),
    # trailing conditions
    ("A = \\pi r^2, \\text{for } r > 0", "\\pi r^2"),
    ("x = 2 \\text{ when } y = 3", "2"),
    ("x = 2 when y = 3", "2"),
    ("f(x) = x^2 \\text{ for all } x", "x^2"),
    ("n = 5 \\quad (\\text{if } n > 0)", "5"),
]

NOT_EQUIVALENT = [
    ("2nd", "3"),
    ("3^{\\text{rd}}", "4"),
    ("3.83e34", "3.83 \\times 10^{35}"),
    ("3.83e35", "3.84 \\times 10^{35}"),
    ("1.5e-3", "0.015"),
    ("2e+1", "20"),  # 2e + 1, not E notation: a signed one-digit exponent needs a decimal mantissa
    ("5 cm^2", "6"),
    ("7 km/h", "8"),
    ("A = 2\\pi r, \\text{for } r > 0", "\\pi r^2"),
    ("x = 3 \\text{ when } y = 2", "2"),
    ("1, 2 \\text{ and } 3", "1, 2"),  # "and" joins the answer: never cut as a condition
]


@pytest.mark.parametrize(("answer", "gold"), EQUIVALENT, ids=[f"{a} == {g}" for a, g in EQUIVALENT])
def test_equal_content_is_equivalent(answer: str, gold: str) -> None:
    verdict = verify_math(f"<think>draft \\boxed{{0}}</think>\nThe answer is $\\boxed{{{answer}}}$.", gold)
    assert (verdict.correct, verdict.reason) == (True, "equivalent"), verdict


@pytest.mark.parametrize(("answer", "gold"), NOT_EQUIVALENT, ids=[f"{a} != {g}" for a, g in NOT_EQUIVALENT])
def test_different_content_is_not_equivalent(answer: str, gold: str) -> None:
    verdict = verify_math(
        f"<think>draft \\boxed{{{gold}}}</think>\nThe answer is $\\boxed{{{answer}}}$.", gold
    )
    assert (verdict.correct, verdict.reason) == (False, "not_equivalent"), verdict


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("</think>\n\n**Answer:** There are 3 objects remaining.", "3"),
        ("</think>\n\nThe answer is 12 apples.", "12"),
        ("</think>\n\nFinal answer: he finished in 3rd place.", "3"),
        ("</think>\n\nFinal answer: $12 dollars.", "12"),
        ("</think>\n\n**Answer:** C) The heat flux stabilizes after an initial decrease.", "C"),
    ],
    ids=["sentence", "count-noun", "ordinal-place", "unescaped-dollar", "choice-with-option-text"],
)
def test_a_stated_answer_in_a_plain_sentence(response: str, gold: str) -> None:
    assert verify_math(response, gold).correct is True


def test_a_choice_letter_with_its_option_text_is_the_letter_not_any_letter() -> None:
    verdict = verify_math("</think>\n\n**Answer:** C) The heat flux stabilizes after a decrease.", "D")
    assert (verdict.correct, verdict.extracted) == (False, "C) The heat flux stabilizes after a decrease")


def test_a_sentence_with_two_numbers_is_not_guessed() -> None:
    # "3 objects ... 2 were red": a grader would not pick one of them for us
    verdict = verify_math("</think>\n\n**Answer:** 3 objects remain and 2 of them are red.", "2")
    assert verdict.correct is not True
