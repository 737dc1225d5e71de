"""Step splitting tables: the three modes, the <think> wrapper, empty steps, no separator."""

from __future__ import annotations

import pytest

from adacot.stages.steps import split_steps

R1 = "<think>\nFirst, 2+2=4.\n\nThen 4*3=12.\n</think>\n\nThe answer is $\\boxed{12}$."


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("a\n\nb\n\nc", "blankLines", ["a", "b", "c"]),
        ("a\nstill a\n\nb", "blankLines", ["a\nstill a", "b"]),
        ("a\n \t \nb\n\n\n\nc", "blankLines", ["a", "b", "c"]),  # whitespace-only lines are blank
        ("a\r\n\r\nb", "blankLines", ["a", "b"]),  # Windows line ends
        ("only one step", "blankLines", ["only one step"]),
        ("", "blankLines", []),
        ("\n\n  \n", "blankLines", []),
        ("a\nb\n\nc", "newlines", ["a", "b", "c"]),
        ("  a  \n\n\n b ", "newlines", ["a", "b"]),
        ("Step 1: x=2 ки\nStep 2: y=3 ки", "tag", ["Step 1: x=2", "Step 2: y=3"]),
        ("x ки y", "tag", ["x", "y"]),  # text after the last tag is a final step
        ("x ки ки y ки", "tag", ["x", "y"]),  # empty steps between tags dropped
        ("no tag\n\nat all", "tag", ["no tag\n\nat all"]),
        (R1, "blankLines", ["First, 2+2=4.", "Then 4*3=12.", "The answer is $\\boxed{12}$."]),
        (R1, "newlines", ["First, 2+2=4.", "Then 4*3=12.", "The answer is $\\boxed{12}$."]),
        ("<think>a\n\nb</think>answer", "blankLines", ["a", "b", "answer"]),  # tag is a boundary
        ("prefilled thought\n\nmore</think>\nanswer", "blankLines", ["prefilled thought", "more", "answer"]),
        ("<think></think>\n\nanswer", "blankLines", ["answer"]),
        ("<think>x ки y</think> z", "tag", ["x", "y", "z"]),
    ],
)
def test_split_steps(text: str, mode: str, expected: list[str]) -> None:
    assert split_steps(text, mode, "ки") == expected  # type: ignore[arg-type]


def test_custom_tag() -> None:
    assert split_steps("a<step>b<step>", "tag", "<step>") == ["a", "b"]


@pytest.mark.parametrize(("mode", "tag"), [("paragraphs", "ки"), ("tag", "")])
def test_bad_mode_is_a_clear_error(mode: str, tag: str) -> None:
    with pytest.raises(ValueError, match="step split mode"):
        split_steps("a", mode, tag)  # type: ignore[arg-type]
