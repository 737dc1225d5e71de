"""SFT data: rows to chat messages, chat-template rendering with assistant-only labels, and packing.

Callers: adacot.training.train (the trainer's dataset and collator), adacot.pipelines.sft_job (pre-flight
counts) and tests.

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

Packing (no cross-sample attention): examples are packed greedily, in order, into rows of at most
max_seq_length tokens; each sample's position_ids restart at 0 and no attention_mask is passed.
transformers then builds a block-diagonal causal mask from the position_ids (masking_utils'
`find_packed_sequence_indices`) for sdpa and eager attention, and flash-attention derives its
cu_seqlens from them, so a token never attends to another sample on CPU or GPU. That detection is
skipped when a KV cache exists, so packed batches carry use_cache=False (and training turns the cache
off): with the cache on, the samples of a row silently attend to each other. The first token of
every packed sample is labelled -100, so no loss term predicts one sample from the previous one.
Padding at the end of a batch forms its own block (positions restart at 0, labels -100).

Limits: multimodal content and tool calls are not handled; messages are role/content strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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


# ------------------------------------------------------------------------------------------ model rows


@dataclass
class Row:
    """One training row: one example, or several packed (position_ids restart at each sample)."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)

    def add(self, item: Tokenized) -> None:
        self.input_ids += item.input_ids
        # The first token of a sample is never a target: with packing it would be predicted from the
        # previous sample's last token; alone, the shifted loss never reaches it anyway.
        self.labels += [IGNORE_INDEX, *item.labels[1:]]
        self.position_ids += list(range(len(item.input_ids)))

    def as_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels, "position_ids": self.position_ids}


def build_rows(items: Sequence[Tokenized], max_seq_length: int, *, packing: bool) -> list[Row]:
    """One row per example, or examples packed greedily in order into rows of <= max_seq_length."""
    rows: list[Row] = []
    for item in items:
        if not rows or not packing or len(rows[-1].input_ids) + len(item.input_ids) > max_seq_length:
            rows.append(Row())
        rows[-1].add(item)
    return rows


class Collator:
    """Pads a batch of rows. Packed rows get no attention_mask (the mask comes from position_ids, see the
    module docstring); unpacked rows get a padding attention_mask."""

    def __init__(self, pad_id: int, *, packing: bool) -> None:
        self.pad_id = pad_id
        self.packing = packing

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        batch: dict[str, list[list[int]]] = {
            "input_ids": [],
            "labels": [],
            "position_ids": [],
            "attention_mask": [],
        }
        for f in features:
            pad = width - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_id] * pad)
            batch["labels"].append(f["labels"] + [IGNORE_INDEX] * pad)
            batch["position_ids"].append(f["position_ids"] + list(range(pad)))
            batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
        if self.packing:
            del batch["attention_mask"]
        else:
            del batch["position_ids"]
        tensors: dict[str, Any] = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
        if self.packing:
            # transformers derives the block-diagonal mask only when no KV cache is passed; a model whose
            # config says use_cache=True would otherwise build one and attend across samples.
            tensors["use_cache"] = False
        return tensors


def padding_share(rows: Sequence[Row], batch_size: int) -> float:
    """Share of non-padding tokens when `rows` are batched in order by `batch_size` (for reports)."""
    real = total = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        real += sum(len(r.input_ids) for r in batch)
        total += max(len(r.input_ids) for r in batch) * len(batch)
    return real / total if total else 0.0
