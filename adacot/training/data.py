"""SFT data: rows to chat messages, chat-template rendering with assistant-only labels.

Callers: adacot.training.train (the trainer's dataset), adacot.training.packing, adacot.pipelines.sft_job
(pre-flight counts) and tests.

Assistant spans (the method): each conversation is rendered with the model's own chat template as text,
once whole and once per assistant turn up to the turn before it (with `add_generation_prompt`) and up
to the end of it. Each rendering must be a prefix of the whole one (true of ChatML, Llama-3 and every
template that appends turns); the characters between the two prefixes are that assistant turn as the
template writes it (content, end-of-turn token and whatever the template appends after it). The whole
text is tokenised once with offsets, and a token is labelled when it starts inside an assistant span.
Diffing character offsets rather than the token counts of separately tokenised prefixes keeps the
spans exact where BPE merges across the boundary; a template that rewrites earlier turns (so a prefix
does not match) is refused with a clear error instead of being guessed at.

The template (`load_tokenizer`): `ModelSpec.chatTemplate` replaces the tokenizer's own when given, as
generation does, and the saved model carries it. Every rendered assistant turn must keep its reasoning
(the text before `</think>`) inside its span: R1-distilled models' templates
(`content.split('</think>')[-1]`) strip it from assistant turns, which would silently train the student
on bare answers, so such a template is refused with an error naming the model and model.chatTemplate.

Over-long examples are dropped and counted, never truncated (a cut-off chain of thought teaches the
model to stop mid-thought); see TrainingSpec.max_seq_length.

Packing and batching live in adacot.training.packing.

Limits: multimodal content and tool calls are not handled; messages are role/content strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacot.artifacts.manifest import Counters
from adacot.artifacts.rows import Message, SftExample

IGNORE_INDEX = -100
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class TemplateError(ValueError):
    """The chat template does not render conversations as appended turns, or drops the reasoning."""


def load_tokenizer(model_path: str, chat_template: str | None = None) -> Any:
    """The model's tokenizer; `chat_template` (ModelSpec.chatTemplate) replaces its own when given."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


# ------------------------------------------------------------------------------------------ rows


def messages_of(row: dict[str, Any], fmt: str, where: str = "row") -> list[dict[str, str]]:
    """The conversation of one dataset row in TRL's messages form (formats: messages|sharegpt|alpaca)."""
    if fmt == "messages":
        messages = [m.model_dump() for m in SftExample.model_validate(_with_ids(row)).messages]
    elif fmt == "sharegpt":
        messages = _from_sharegpt(row, where)
    elif fmt == "alpaca":
        messages = _from_alpaca(row, where)
    else:
        raise ValueError(f"unknown dataset format {fmt!r} (expected messages, sharegpt or alpaca)")
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the conversation must end with an assistant turn")
    return messages


def _with_ids(row: dict[str, Any]) -> dict[str, Any]:
    # Plain TRL files carry only `messages`; the origin fields of SftExample are optional for training.
    return {"question_id": "-", "source": "-", **row}


def _from_sharegpt(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    turns = row.get("conversations")
    if not isinstance(turns, list):
        raise ValueError(f"{where}: a sharegpt row needs a 'conversations' list")
    messages = [{"role": "system", "content": str(row["system"])}] if row.get("system") else []
    for turn in turns:
        role = _SHAREGPT_ROLES.get(str(turn.get("from")))
        if role is None:
            raise ValueError(f"{where}: unknown sharegpt speaker {turn.get('from')!r}")
        messages.append({"role": role, "content": str(turn.get("value", ""))})
    return [Message.model_validate(m).model_dump() for m in messages]


def _from_alpaca(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    if "instruction" not in row or "output" not in row:
        raise ValueError(f"{where}: an alpaca row needs 'instruction' and 'output'")
    prompt = str(row["instruction"]) + (f"\n\n{row['input']}" if row.get("input") else "")
    messages = [{"role": "system", "content": str(row["system"])}] if row.get("system") else []
    return [
        *messages,
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": str(row["output"])},
    ]


def read_conversations(path: Path, fmt: str) -> Iterator[list[dict[str, str]]]:
    """Conversations from a JSONL/Parquet file, a complete artifact (the data files its manifest lists,
    e.g. a DistillationJob's output), or every such file under a plain directory (sorted)."""
    from adacot.artifacts.datasets import read_rows

    files = _data_files(path)
    if not files:
        raise ValueError(f"{path}: no .jsonl or .parquet files")
    for file in files:
        for where, row in read_rows(file):
            yield messages_of(row, fmt, where)


def _data_files(path: Path) -> list[Path]:
    from adacot.artifacts.store import artifact_files, is_complete

    if not path.exists():
        raise ValueError(f"{path}: the dataset does not exist")
    if is_complete(path):
        return artifact_files(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".parquet"))
    return [path]


# ------------------------------------------------------------------------------------------ tokenise


@dataclass(frozen=True)
class Tokenized:
    """One example: token ids and labels (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character spans of its assistant turns; each
    turn's reasoning must be inside its span (TemplateError otherwise)."""
    text = _render(tokenizer, messages, generation_prompt=False)
    turns = [(i, m) for i, m in enumerate(messages) if m["role"] == "assistant"]
    for _, message in turns:  # before the prefixes: a dropped reasoning is the error worth naming
        _require_reasoning(tokenizer, text, message["content"])
    spans = []
    for index, message in turns:
        start = len(_prefix(tokenizer, text, messages[:index], generation_prompt=True))
        end = len(_prefix(tokenizer, text, messages[: index + 1], generation_prompt=False))
        _require_reasoning(tokenizer, text[start:end], message["content"])
        spans.append((start, end))
    return text, spans


def reasoning_of(content: str) -> str:
    """The reasoning of an R1-format answer: the text before the first `</think>`, without the opening
    tag or surrounding blank space ("" when there is none)."""
    if THINK_CLOSE not in content:
        return ""
    return content.split(THINK_CLOSE, 1)[0].replace(THINK_OPEN, "", 1).strip()


def _require_reasoning(tokenizer: Any, rendered: str, content: str) -> None:
    reasoning = reasoning_of(content)
    if reasoning and reasoning not in rendered:
        model = getattr(tokenizer, "name_or_path", "") or "the model"
        raise TemplateError(
            f"the chat template used for {model} (model.chatTemplate when set, else the tokenizer's own) "
            f"drops the reasoning from assistant turns: the rendered example lacks the text before "
            f"{THINK_CLOSE} (R1-distilled models' templates keep only what follows it), so SFT would train "
            "on answers without their chains of thought; set model.chatTemplate to a template that "
            "renders the assistant content whole (e.g. ChatML)"
        )


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)
    )


def _prefix(tokenizer: Any, text: str, messages: Sequence[dict[str, str]], *, generation_prompt: bool) -> str:
    prefix = _render(tokenizer, messages, generation_prompt=generation_prompt)
    if not text.startswith(prefix):
        raise TemplateError(
            "the chat template does not render the conversation as appended turns (a rendered prefix is "
            "not a prefix of the whole); assistant-only labels cannot be located"
        )
    return prefix


def tokenize(tokenizer: Any, messages: Sequence[dict[str, str]], *, assistant_only: bool = True) -> Tokenized:
    """Token ids of the rendered conversation; labels copy the ids on assistant tokens (or all tokens)."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    if not assistant_only:
        return Tokenized(ids, list(ids))
    labels = [
        token if any(s <= start < e for s, e in spans) else IGNORE_INDEX
        for token, (start, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return Tokenized(ids, labels)


@dataclass
class TokenizeStats(Counters):
    """Counts the pipeline reports: examples kept, dropped as too long, tokens."""

    examples: int = 0
    dropped_too_long: int = 0
    dropped_no_loss: int = 0
    tokens: int = 0
    label_tokens: int = 0


def tokenize_all(
    tokenizer: Any,
    conversations: Iterable[Sequence[dict[str, str]]],
    max_seq_length: int,
    *,
    assistant_only: bool = True,
    stats: TokenizeStats | None = None,
) -> list[Tokenized]:
    """Tokenise every conversation; drop (and count) those longer than max_seq_length or without loss."""
    stats = stats if stats is not None else TokenizeStats()
    kept = []
    for messages in conversations:
        item = tokenize(tokenizer, messages, assistant_only=assistant_only)
        if len(item.input_ids) > max_seq_length:
            stats.dropped_too_long += 1
            continue
        if all(label == IGNORE_INDEX for label in item.labels[1:]):
            stats.dropped_no_loss += 1
            continue
        kept.append(item)
        stats.examples += 1
        stats.tokens += len(item.input_ids)
        stats.label_tokens += sum(label != IGNORE_INDEX for label in item.labels[1:])
    return kept
