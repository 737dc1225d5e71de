"""Where a long reasoning trace keeps its final answer: after the reasoning, in every common format.

Reasoning models think first and answer after; a number or `\\boxed{}` inside the thoughts is a
draft, so only the text after the reasoning may hold the answer:

  R1, QwQ, Qwen3:  `<think> reasoning </think> answer` (templates often prefill `<think>`, so the
                   response may hold only `</think>`);
  Sky-T1, Bespoke-Stratos, OpenThoughts:  `<|begin_of_thought|> reasoning <|end_of_thought|>
                   <|begin_of_solution|> answer <|end_of_solution|>`;
  plain text:      the whole response.

A trace that opened its reasoning and never closed it - cut off by the token limit - has no answer,
whatever its thoughts contain; so has a trace whose text after the reasoning is empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THOUGHT_OPEN, THOUGHT_CLOSE = "<|begin_of_thought|>", "<|end_of_thought|>"
SOLUTION_OPEN, SOLUTION_CLOSE = "<|begin_of_solution|>", "<|end_of_solution|>"
# End-of-turn tokens a decoder may leave in the text when special tokens are not skipped.
_END_TOKENS_RE = re.compile(r"<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<｜end▁of▁sentence｜>|</s>")
CUT_OFF = "no final answer: the trace ends inside its reasoning ({marker} never closed)"
NOTHING_AFTER = "no final answer after the reasoning"


@dataclass(frozen=True)
class Scope:
    """The text that may hold the final answer, or None and why there is none."""

    text: str | None
    why: str = ""


def read_scope(response: str) -> Scope:
    """The part of a response after its reasoning, in whichever format the response uses."""
    if SOLUTION_OPEN in response:
        # A solution cut off before <|end_of_solution|> still states what it states so far.
        text = response.rsplit(SOLUTION_OPEN, 1)[1].split(SOLUTION_CLOSE, 1)[0]
    elif THOUGHT_CLOSE in response:
        text = response.rsplit(THOUGHT_CLOSE, 1)[1]
    elif THOUGHT_OPEN in response:
        return Scope(None, CUT_OFF.format(marker=THOUGHT_OPEN))
    elif THINK_CLOSE in response:
        # Thinking that starts again after the answer and is cut off is not part of the answer.
        text = response.rsplit(THINK_CLOSE, 1)[1].split(THINK_OPEN, 1)[0]
    elif THINK_OPEN in response:
        return Scope(None, CUT_OFF.format(marker=THINK_OPEN))
    else:
        text = response
    text = _END_TOKENS_RE.sub("", text)
    if not text.strip():
        return Scope(None, NOTHING_AFTER if text != response else "empty response")
    return Scope(text)
