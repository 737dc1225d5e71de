"""Cut a model's response into reasoning steps, the unit a process reward model scores.

Callers: the grading stage (before calling a `StepScorer`) and the PRM tests. The modes follow
`PrmSpec.step_split`:

- ``blankLines`` (default): steps are paragraphs separated by one or more blank lines, the format
  Qwen2.5-Math-PRM was trained on (its model card joins steps with "\\n\\n").
- ``newlines``: every non-empty line is a step (finer; long derivations give many steps).
- ``tag``: steps end with an explicit marker (Math-Shepherd's "ки"); text after the last marker is a
  final step of its own.

R1-style responses wrap their reasoning in ``<think>…</think>`` and then state the answer. The tags are
removed and act as step boundaries, so the reasoning and the final answer are both scored, and a tag
never glues the last thought to the answer. A response whose ``<think>`` was part of the prompt (only
``</think>`` present) is handled the same way. Whitespace around each step is stripped and empty steps
are dropped; a response without any separator is one step; an empty response has no steps.

Limits: no attempt is made to recognise steps inside a single paragraph (e.g. "Step 1: … Step 2: …" on
one line) — choose the mode that matches the model's output format.
"""

from __future__ import annotations

import re
from typing import Literal

StepSplit = Literal["blankLines", "newlines", "tag"]

_THINK_TAG = re.compile(r"</?think>")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def split_steps(text: str, mode: StepSplit = "blankLines", tag: str = "ки") -> list[str]:
    """The non-empty, stripped steps of `text` in order (see the module docstring for the modes)."""
    if mode not in ("blankLines", "newlines", "tag"):
        raise ValueError(f"step split mode must be blankLines, newlines or tag, not {mode!r}")
    if mode == "tag" and not tag:
        raise ValueError("step split mode tag needs a non-empty tag")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    steps: list[str] = []
    for block in _THINK_TAG.split(text):
        steps.extend(_split_block(block, mode, tag))
    return steps


def _split_block(block: str, mode: StepSplit, tag: str) -> list[str]:
    if mode == "blankLines":
        pieces = _BLANK_LINES.split(block)
    elif mode == "newlines":
        pieces = block.split("\n")
    else:
        pieces = block.split(tag)
    return [p.strip() for p in pieces if p.strip()]
