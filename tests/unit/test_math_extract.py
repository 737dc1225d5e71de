"""Final-answer extraction: a table of response shapes seen from real models (R1, Qwen, GSM8K-style)."""

from __future__ import annotations

import pytest

from adacot.verify.math_extract import (
    Extraction,
    answer_scope,
    as_latex,
    extract_answer,
    gold_answer,
    last_boxed,
)

EXTRACTION_TABLE = [
    # (id, response, expected text, expected method)
    ("boxed-inline-math", r"So $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}", "boxed"),
    ("boxed-last-wins", r"First \boxed{3}, then corrected: \boxed{4}", "4", "boxed"),
    (
        "boxed-nested-braces",
        r"Thus \boxed{\left\{1, \frac{2}{3}\right\}} is the set.",
        r"\left\{1, \frac{2}{3}\right\}",
        "boxed",
    ),
    ("boxed-escaped-braces", r"The result is \boxed{\{1,2\}}.", r"\{1,2\}", "boxed"),
    ("boxed-without-braces", r"Hence the answer is $\boxed 5$.", "5", "boxed"),
    ("fbox", r"We get \fbox{42}", "42", "boxed"),
    ("boxed-text-choice", r"Final: \boxed{\text{(B)}}", r"\text{(B)}", "boxed"),
    (
        "boxed-matrix",
        r"Thus $\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}$",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
        "boxed",
    ),
    ("boxed-space-before-brace", r"\boxed {7}", "7", "boxed"),
    ("boxed-truncated-falls-back-to-complete", r"\boxed{1} and later \boxed{2", "1", "boxed"),
    ("r1-draft-in-think-ignored", "<think>maybe \\boxed{7}</think>\nThe answer is \\boxed{8}.", "8", "boxed"),
    (
        "r1-only-closing-tag",
        "Let me see, 2+2... \\boxed{5}?\n</think>\n\n**Answer:** 4",
        "4",
        "answer_phrase",
    ),
    ("r1-phrase-after-think", "Okay.\n</think>\n\nThe answer is 12.", "12", "answer_phrase"),
    ("gsm8k-hashes", "She makes 9 * 2 = $18 every day.\n#### 18", "18", "gsm8k"),
    ("gsm8k-thousands", "So the total is 1000.\n#### 1,000", "1,000", "gsm8k"),
    (
        "minerva-final-answer",
        r"Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.",
        r"\frac{3}{4}",
        "answer_phrase",
    ),
    ("markdown-final-answer-tuple", "**Final Answer:** (2, 3)", "(2, 3)", "answer_phrase"),
    ("final-answer-equation", "Final answer: x = -7", "x = -7", "answer_phrase"),
    ("answer-is-decimal-full-stop", "Therefore the answer is 3.5.", "3.5", "answer_phrase"),
    ("answer-is-colon-bold", "The answer is: **72**", "72", "answer_phrase"),
    (
        "answer-to-the-question",
        r"The answer to the question is $\left[ -2, 7 \right]$.",
        r"\left[ -2, 7 \right]",
        "answer_phrase",
    ),
    ("answer-paren-math", r"Answer: \(\sqrt{2}\)", r"\sqrt{2}", "answer_phrase"),
    ("answer-dollar-then-prose", "the answer is $5$ and I'm sure", "5", "answer_phrase"),
    (
        "final-answer-heading-display",
        "**Final Answer**\n\n$$\n\\frac{1}{2}\n$$",
        r"\frac{1}{2}",
        "answer_phrase",
    ),
    (
        "final-answer-next-line-bracket",
        "Final answer:\n\\[ x \\in [1, 2] \\]\n",
        r"x \in [1, 2]",
        "answer_phrase",
    ),
    ("last-number-fallback", "I computed 3 + 4 = 7 and then doubled to get 14", "14", "last_number"),
    ("last-number-thousands", "Total is 1,250 dollars", "1250", "last_number"),
    ("last-number-negative-decimal", "it drops to -2.5 degrees", "-2.5", "last_number"),
]


@pytest.mark.parametrize(
    ("response", "text", "method"),
    [row[1:] for row in EXTRACTION_TABLE],
    ids=[row[0] for row in EXTRACTION_TABLE],
)
def test_extracts_final_answer(response: str, text: str, method: str) -> None:
    assert extract_answer(response) == Extraction(text, method)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "response",
    [
        "No numbers here at all.",
        r"\boxed{",
        "<think>maybe \\boxed{7} ... still thinking",  # cut off inside the thoughts: no answer yet
        "<think>The answer is 7</think>\n",  # the answer never left the thoughts
        "",
    ],
    ids=["no-number", "unclosed-box", "unterminated-think", "answer-only-in-think", "empty"],
)
def test_no_answer(response: str) -> None:
    assert extract_answer(response) is None


def test_scope_is_after_last_think_close() -> None:
    assert answer_scope("<think>a</think>b</think>c") == "c"
    assert answer_scope("plain") == "plain"
    assert answer_scope("<think>never closed") is None


def test_last_boxed_ignores_longer_command_names() -> None:
    # `\boxedanswer` is not `\boxed`; the real box before it wins
    assert last_boxed(r"\boxed{1} \boxedanswer{2}") == "1"


@pytest.mark.parametrize(
    ("gold", "expected"),
    [
        ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18", "18"),
        ("so 70,000 in total\n#### 1,450,000", "1450000"),
        ("It falls by 10.\n#### -10", "-10"),
        (r"\frac{1}{2}", r"\frac{1}{2}"),
        (" 18 ", "18"),
        (r"We find $x = 6$, so the answer is $\boxed{6}$.", "6"),
    ],
    ids=["gsm8k", "gsm8k-thousands", "gsm8k-negative", "latex", "plain-padded", "full-solution-boxed"],
)
def test_gold_answer(gold: str, expected: str) -> None:
    assert gold_answer(gold) == expected


@pytest.mark.parametrize(
    ("span", "latex"),
    [
        ("$90°$", r"90^\circ"),
        (r"90^\circ.", r"90^\circ"),
        ("36 dollars", "36"),
        (r"\$32,348 dollars", r"\$32,348"),
        ("32,348 square units", "32,348"),
        ("2 x", "2 x"),  # a single letter is a variable, not a unit
        (r"\$18.90", r"\$18.90"),  # escaped dollar is currency and stays for math-verify to drop
    ],
)
def test_as_latex_normalisations(span: str, latex: str) -> None:
    assert as_latex(span) == latex
