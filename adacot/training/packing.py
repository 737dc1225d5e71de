"""SFT rows and batches: examples packed best-fit-decreasing, batched without cross-sample attention.

Callers: adacot.training.train (the trainer's dataset and collator), benchmarks/sft.py and tests.

Packing: examples are packed best-fit-decreasing into rows of at most max_seq_length tokens (longest
first, each into the open row it fills most tightly, a new row when none has room). On variable-length
chat data this fills rows to ~97 % (GSM8K chats of 92-477 tokens into 512: 96.7 %, where packing in
arrival order filled 74 % and batched 82 %); the share depends on the lengths (examples all just over
half of max_seq_length leave every row half empty) and is reported as `non_padding_share`.

No cross-sample attention: each sample's position_ids restart at 0 and no attention_mask is passed.
Two batch layouts, chosen by the model's attention implementation (`padding_free`):
- rows ([batch, longest row], padded; sdpa and eager): transformers builds a block-diagonal
  causal mask from the position_ids of each row (masking_utils' `find_packed_sequence_indices`), so a
  token attends only inside its sample. The attention of a row costs its full length squared (the
  masked blocks are computed too), which is why rows are not flattened on these implementations: one
  flattened batch would cost (batch x length) squared, as TRL's padding-free batches do on CPU.
- flattened ([1, all tokens], no padding at all; flash-attention): transformers derives flash
  varlen cu_seqlens from the position_ids, but only for a batch of one row (modeling_flash_attention_
  utils' `_is_packed_sequence`); rows of a larger batch would run plain causal flash attention and
  attend across samples. Flattened, every sample's attention costs its own length squared.
Both are skipped when a KV cache exists, so packed batches carry use_cache=False (and training turns
the cache off). The first token of every sample is labelled -100, so no loss term predicts one sample
from the previous one; padding at the end of a row forms its own block (positions restart at 0,
labels -100). The loss is the Trainer's mean over labelled tokens, the same set in either layout.

Limits: tests/unit/test_sft_packing.py checks both layouts on CPU with sdpa and eager (each example's
loss packed equals its loss unpacked); the flash-attention varlen path itself needs a GPU and the
flash-attn package, and is not exercised there. Only flash-attention gets flattened batches; another
implementation that ignores position_ids boundaries would need its own layout.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adacot.training.data import IGNORE_INDEX, Tokenized


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


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins whose lengths sum to <= capacity: longest first (ties in
    index order), each into the open bin with the least room that fits it (ties: the latest such bin)."""
    bins: list[list[int]] = []
    rooms: list[int] = []  # the distinct free room of open bins, sorted (at most `capacity` values)
    open_bins: dict[int, list[int]] = {}  # free room -> bins with that room
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"an example of {length} tokens does not fit rows of {capacity}")
        at = bisect.bisect_left(rooms, length)
        if at < len(rooms):
            room, target = rooms[at], open_bins[rooms[at]].pop()
            if not open_bins[room]:
                del open_bins[room], rooms[at]
        else:
            room, target = capacity, len(bins)
            bins.append([])
        bins[target].append(index)
        if room > length:
            if room - length not in open_bins:
                bisect.insort(rooms, room - length)
            open_bins.setdefault(room - length, []).append(target)
    return bins


def build_rows(items: Sequence[Tokenized], max_seq_length: int, *, packing: bool) -> list[Row]:
    """One row per example in order, or examples packed best-fit-decreasing into rows of <= max_seq_length."""
    groups = (
        best_fit_decreasing([len(item.input_ids) for item in items], max_seq_length)
        if packing
        else [[index] for index in range(len(items))]
    )
    rows = []
    for group in groups:
        row = Row()
        for index in group:
            row.add(items[index])
        rows.append(row)
    return rows


def padding_free(attention: str) -> bool:
    """Whether packed batches are flattened into one row for this attention implementation (see the
    module docstring): flash-attention's varlen path needs it; sdpa and eager would pay for it."""
    return "flash" in attention


class Collator:
    """Batches rows. Packed rows get no attention_mask (the mask comes from position_ids, see the module
    docstring), padded to the longest row or, with `flatten`, concatenated into one row without padding;
    unpacked rows get a padding attention_mask."""

    def __init__(self, pad_id: int, *, packing: bool, flatten: bool = False) -> None:
        if flatten and not packing:
            raise ValueError("flattened batches need packing (position_ids mark the samples)")
        self.pad_id = pad_id
        self.packing = packing
        self.flatten = flatten

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        batch = self._flat(features) if self.flatten else self._padded(features)
        tensors: dict[str, Any] = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
        if self.packing:
            # transformers derives the block-diagonal mask only when no KV cache is passed; a model whose
            # config says use_cache=True would otherwise build one and attend across samples.
            tensors["use_cache"] = False
        return tensors

    def _padded(self, features: list[dict[str, list[int]]]) -> dict[str, list[list[int]]]:
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
        del batch["attention_mask" if self.packing else "position_ids"]
        return batch

    @staticmethod
    def _flat(features: list[dict[str, list[int]]]) -> dict[str, list[list[int]]]:
        keys = ("input_ids", "labels", "position_ids")
        return {key: [[value for f in features for value in f[key]]] for key in keys}


def padding_share(rows: Sequence[Row], batch_size: int) -> float:
    """Share of non-padding tokens when `rows` are batched in order by `batch_size`, padded (for reports;
    flattened batches have none)."""
    real = total = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        real += sum(len(r.input_ids) for r in batch)
        total += max(len(r.input_ids) for r in batch) * len(batch)
    return real / total if total else 0.0
