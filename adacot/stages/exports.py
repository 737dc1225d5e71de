"""Kept CoT traces as training data: TRL's conversational messages, and LLaMA-Factory's ShareGPT / Alpaca.

Callers: adacot.pipelines.distillation_job (the dataset it writes) and tests.

- TRL: `SftExample` rows, `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}` plus
  question id, level and source, which SFTTrainer reads as a conversational dataset (extra columns are
  ignored by it and kept for analysis).
- ShareGPT (LLaMA-Factory `formatting: sharegpt`): `{"conversations": [{"from": "human", "value": ...},
  {"from": "gpt", "value": ...}], "system": ...}`.
- Alpaca (LLaMA-Factory's default formatting): `{"instruction": ..., "input": "", "output": ...,
  "system": ...}`; only single-turn examples fit it, which is all this stage writes.
- `dataset_info()`: the `dataset_info.json` entries LLaMA-Factory needs to find those files.

The teacher's system message is not copied into the examples: it steered the teacher, and the student
is trained on the question and the R1-format answer alone (pass `system` to add one).

Limits: one user turn per example; the exports hold the same rows as the TRL file, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from adacot.artifacts.rows import CotTrace, Message, SftExample

ExportFormat = Literal["sharegpt", "alpaca"]
EXPORT_FILES: dict[str, str] = {"sharegpt": "sharegpt.jsonl", "alpaca": "alpaca.jsonl"}
_SHAREGPT_ROLES = {"user": "human", "assistant": "gpt"}


def sft_example(trace: CotTrace, *, system: str | None = None) -> SftExample:
    """One TRL conversational example: (system,) user prompt, assistant R1 text."""
    messages = [Message(role="system", content=system)] if system else []
    messages += [Message(role="user", content=trace.prompt), Message(role="assistant", content=trace.text)]
    return SftExample(
        messages=messages, question_id=trace.question_id, level=trace.level, source=trace.source
    )


def _system_of(example: SftExample) -> str | None:
    return next((m.content for m in example.messages if m.role == "system"), None)


def sharegpt_row(example: SftExample) -> dict[str, Any]:
    """The ShareGPT form of an example (system message as its own column, as LLaMA-Factory expects)."""
    turns = [
        {"from": _SHAREGPT_ROLES[m.role], "value": m.content} for m in example.messages if m.role != "system"
    ]
    row: dict[str, Any] = {"conversations": turns}
    system = _system_of(example)
    if system:
        row["system"] = system
    return row


def alpaca_row(example: SftExample) -> dict[str, Any]:
    """The Alpaca form of a single-turn example."""
    turns = [m for m in example.messages if m.role != "system"]
    if [m.role for m in turns] != ["user", "assistant"]:
        raise ValueError(f"example {example.question_id}: Alpaca holds one user and one assistant turn")
    row: dict[str, Any] = {"instruction": turns[0].content, "input": "", "output": turns[1].content}
    system = _system_of(example)
    if system:
        row["system"] = system
    return row


def export_row(fmt: str, example: SftExample) -> dict[str, Any]:
    if fmt == "sharegpt":
        return sharegpt_row(example)
    if fmt == "alpaca":
        return alpaca_row(example)
    raise ValueError(f"unknown export format {fmt!r} (expected sharegpt or alpaca)")


def dataset_info(name: str, formats: Sequence[str]) -> dict[str, Any]:
    """LLaMA-Factory `dataset_info.json` entries for the exported files (relative file names)."""
    info: dict[str, Any] = {}
    if "sharegpt" in formats:
        info[f"{name}_sharegpt"] = {
            "file_name": EXPORT_FILES["sharegpt"],
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    if "alpaca" in formats:
        info[f"{name}_alpaca"] = {
            "file_name": EXPORT_FILES["alpaca"],
            "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"},
        }
    return info
