"""Assemble a teacher's output into the R1 training format `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`.

Callers: adacot.stages.distill (every teacher sample passes through `assemble` before it is verified).

Where the reasoning comes from, in order:
1. `reasoning_content` (Sample.reasoning) when the server returns it (DeepSeek API, vLLM with a reasoning
   parser); the answer is then the message content, with any stray think tags removed.
2. Inline tags in the text: `<think>…</think>` followed by the answer. R1's own chat template opens the
   think block in the prompt, so a text holding `</think>` without an opening tag is read the same way
   (everything before it is reasoning).
3. Neither: with `require_reasoning` (the default of FilterSpec) the sample is rejected with reason
   `no_reasoning`; without it the sample is kept answer-only, written with an EMPTY think block
   (`<think>\\n\\n</think>\\n\\n{answer}`, as Qwen3's non-thinking mode does) so that every training
   example has the same shape and the student always opens with `<think>`.

Other rejections: `unclosed_think` (a `<think>` that never closes: the reasoning was cut off),
`empty_answer` (nothing after the reasoning; there is no final answer to verify).

Limits: only the `<think>` tag spelling is recognised (not `<reasoning>` or `<|begin_of_thought|>`); the
first `</think>` ends the reasoning (a model quoting the tag inside its reasoning is not supported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
_TAG = re.compile(r"</?think>")


@dataclass(frozen=True)
class R1Result:
    """The assembled sample: `text` is None exactly when `reason` says why it was rejected."""

    reasoning: str
    """The reasoning without tags ("" for answer-only samples)."""
    answer: str
    """The final part, what the verifier checks."""
    text: str | None
    """The R1-format training text, or None when rejected."""
    reason: str | None = None
    """no_reasoning, unclosed_think or empty_answer when rejected."""


def r1_text(reasoning: str, answer: str) -> str:
    """The R1 format of a reasoning and an answer."""
    return f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{answer}"


def _split_inline(text: str) -> tuple[str, str] | str | None:
    """(reasoning, answer) from inline tags, a rejection reason, or None when the text has no tags."""
    closing = text.find(CLOSE)
    if closing < 0:
        return "unclosed_think" if OPEN in text else None
    head, answer = text[:closing], text[closing + len(CLOSE) :]
    opening = head.find(OPEN)
    reasoning = head[opening + len(OPEN) :] if opening >= 0 else head
    return reasoning, answer


def _rejected(reason: str, reasoning: str = "", answer: str = "") -> R1Result:
    return R1Result(reasoning=reasoning, answer=answer, text=None, reason=reason)


def assemble(text: str, reasoning: str | None = None, *, require_reasoning: bool = True) -> R1Result:
    """Reasoning and answer of one teacher sample, in the R1 format (see the module docstring)."""
    if reasoning is not None and reasoning.strip():
        thought, answer = reasoning.strip(), _TAG.sub("", text).strip()
    else:
        split = _split_inline(text)
        if isinstance(split, str):
            return _rejected(split, answer=text.strip())
        if split is None:
            answer = text.strip()
            if require_reasoning:
                return _rejected("no_reasoning", answer=answer)
            return R1Result("", answer, r1_text("", answer)) if answer else _rejected("empty_answer")
        thought, answer = split[0].strip(), split[1].strip()
        if not thought and require_reasoning:
            return _rejected("no_reasoning", answer=answer)
    if not answer:
        return _rejected("empty_answer", reasoning=thought)
    return R1Result(thought, answer, r1_text(thought, answer))
