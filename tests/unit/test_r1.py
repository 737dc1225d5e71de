"""R1 assembly: where the reasoning comes from, what is rejected and why, and the exact output format."""

from __future__ import annotations

import pytest

from adacot.stages.r1 import assemble, r1_text

R1 = "<think>\n{}\n</think>\n\n{}"

CASES = [
    # (text, reasoning_content, require_reasoning, expected text or None, reason)
    ("The answer is 4.", "2 plus 2 is 4.", True, R1.format("2 plus 2 is 4.", "The answer is 4."), None),
    ("  \\boxed{4}\n", "\n  think hard \n", True, R1.format("think hard", "\\boxed{4}"), None),
    # A server that returns reasoning separately and leaves stray tags in the content.
    ("<think></think>\\boxed{4}", "add", True, R1.format("add", "\\boxed{4}"), None),
    (
        "<think>\nadd 2 and 2\n</think>\n\n\\boxed{4}",
        None,
        True,
        R1.format("add 2 and 2", "\\boxed{4}"),
        None,
    ),
    ("<think>a</think>b", None, True, R1.format("a", "b"), None),
    # R1's chat template opens the think block in the prompt: only the closing tag is generated.
    ("add 2 and 2\n</think>\n\nSo \\boxed{4}", None, True, R1.format("add 2 and 2", "So \\boxed{4}"), None),
    # Empty reasoning_content falls back to the inline tags.
    ("<think>x</think>y", "  ", True, R1.format("x", "y"), None),
    ("\\boxed{4}", None, True, None, "no_reasoning"),
    ("<think>  </think>\\boxed{4}", None, True, None, "no_reasoning"),
    ("<think>still thinking when the tokens ran out", None, True, None, "unclosed_think"),
    ("<think>still thinking", None, False, None, "unclosed_think"),
    ("<think>done</think>   ", None, True, None, "empty_answer"),
    ("   ", "reasoned", True, None, "empty_answer"),
    # Answer-only outputs are kept with an empty think block when reasoning is not required.
    ("\\boxed{4}", None, False, R1.format("", "\\boxed{4}"), None),
    ("<think></think>\\boxed{4}", None, False, R1.format("", "\\boxed{4}"), None),
    ("", None, False, None, "empty_answer"),
]


@pytest.mark.parametrize(("text", "reasoning", "required", "expected", "reason"), CASES)
def test_assembly(
    text: str, reasoning: str | None, required: bool, expected: str | None, reason: str | None
) -> None:
    result = assemble(text, reasoning, require_reasoning=required)
    assert result.text == expected
    assert result.reason == reason


def test_parts_are_kept_apart_for_verification() -> None:
    result = assemble("<think>\nsteps\n</think>\n\nfinal \\boxed{7}")
    assert (result.reasoning, result.answer) == ("steps", "final \\boxed{7}")
    rejected = assemble("just \\boxed{7}")
    assert rejected.answer == "just \\boxed{7}" and rejected.text is None  # still reported


def test_format_is_r1() -> None:
    assert r1_text("why", "what") == "<think>\nwhy\n</think>\n\nwhat"
