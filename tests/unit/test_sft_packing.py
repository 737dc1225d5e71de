"""SFT packing on real chat records: best-fit-decreasing rows, both batch layouts (padded rows, one
flattened row), and no cross-sample attention: every example's loss is the same packed as unpacked,
with sdpa and eager attention, while a control that lets a row's examples attend to each other differs."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from sft_helpers import chat
from shared_data import needs_shared_data
from transformers import AutoModelForCausalLM, AutoTokenizer

from adacot.training.data import IGNORE_INDEX, Tokenized, tokenize_all
from adacot.training.packing import Collator, best_fit_decreasing, build_rows, padding_free, padding_share


@pytest.fixture(scope="module")
def tokenizer(tiny_lm: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_lm)


# ---------------------------------------------------------------- best-fit-decreasing (pure)


@pytest.mark.parametrize(
    ("lengths", "capacity", "bins"),
    [
        ([], 8, []),
        ([5, 3, 2], 8, [[0, 1], [2]]),
        ([4, 4, 4, 4], 8, [[0, 1], [2, 3]]),
        ([6, 5, 3, 2], 8, [[0, 3], [1, 2]]),  # in arrival order: [6], [5, 3], [2]
        ([2, 6, 2, 5], 8, [[1, 0], [3, 2]]),  # longest first, each into the tightest fit
        ([3, 1, 3], 4, [[0], [2, 1]]),  # equal room: the latest bin
        ([8, 1], 8, [[0], [1]]),
    ],
)
def test_best_fit_decreasing(lengths: list[int], capacity: int, bins: list[list[int]]) -> None:
    assert best_fit_decreasing(lengths, capacity) == bins


def test_best_fit_decreasing_partitions_within_capacity_into_full_rows() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(90, 480) for _ in range(2000)]
    bins = best_fit_decreasing(lengths, 512)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert sum(lengths) / (512 * len(bins)) > 0.95  # rows 96 % full (in arrival order: 73 %)


def test_an_example_longer_than_a_row_is_an_error() -> None:
    with pytest.raises(ValueError, match="9 tokens does not fit rows of 8"):
        best_fit_decreasing([3, 9], 8)


# ---------------------------------------------------------------- rows and batches


@needs_shared_data
def test_packing_rows_restart_positions_and_mask_first_tokens(tokenizer: Any) -> None:
    items = tokenize_all(tokenizer, [chat(i) for i in range(8)], 4096)
    width = 2 * max(len(i.input_ids) for i in items)
    rows = build_rows(items, width, packing=True)

    tokens = sum(len(i.input_ids) for i in items)
    assert sum(len(r.input_ids) for r in rows) == tokens
    assert len(rows) == math.ceil(tokens / width) and all(len(r.input_ids) <= width for r in rows)
    starts = [i for r in rows for i, p in enumerate(r.position_ids) if p == 0]
    assert len(starts) == len(items)
    assert all(r.labels[i] == IGNORE_INDEX for r in rows for i, p in enumerate(r.position_ids) if p == 0)
    assert padding_share(rows, 1) == 1.0 > padding_share(build_rows(items, width, packing=False), 2)


@needs_shared_data
def test_collator_pads_packed_rows_as_their_own_block(tokenizer: Any) -> None:
    items = tokenize_all(tokenizer, [chat(i) for i in range(3)], 4096)
    rows = [r.as_dict() for r in build_rows(items, 10_000, packing=False)]
    packed = Collator(tokenizer.pad_token_id, packing=True)(rows)
    plain = Collator(tokenizer.pad_token_id, packing=False)(rows)

    assert "attention_mask" not in packed and "position_ids" not in plain
    assert packed["use_cache"] is False  # with a KV cache transformers would not build the block mask
    shortest = min(range(3), key=lambda i: len(rows[i]["input_ids"]))
    n = len(rows[shortest]["input_ids"])
    assert packed["position_ids"][shortest, n].item() == 0  # the padding starts a new block
    assert (packed["labels"][shortest, n:] == IGNORE_INDEX).all()
    assert plain["attention_mask"][shortest].sum().item() == n


def test_flattened_batch_is_one_row_without_padding() -> None:
    items = [
        Tokenized([1, 2, 3], [1, 2, 3]),
        Tokenized([4, 5], [4, 5]),
        Tokenized([6, 7, 8, 9], [6, 7, 8, 9]),
    ]
    rows = [r.as_dict() for r in build_rows(items, 5, packing=True)]  # [6 7 8 9], [1 2 3 4 5]
    batch = Collator(0, packing=True, flatten=True)(rows)

    assert batch["input_ids"].tolist() == [[6, 7, 8, 9, 1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 7, 8, 9, IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5]]
    assert "attention_mask" not in batch and batch["use_cache"] is False
    with pytest.raises(ValueError, match="need packing"):
        Collator(0, packing=False, flatten=True)


@pytest.mark.parametrize(
    ("attention", "flattened"),
    [("flash_attention_2", True), ("flash_attention_3", True), ("sdpa", False), ("eager", False)],
)
def test_only_flash_attention_gets_flattened_batches(attention: str, flattened: bool) -> None:
    assert padding_free(attention) is flattened


# ---------------------------------------------------------------- no cross-sample attention


def example_losses(model: Any, batch: dict[str, Any], spans: list[tuple[int, int, int]]) -> torch.Tensor:
    """Mean next-token loss of each example, at (batch row, start, end) spans, as the Trainer takes it."""
    with torch.no_grad():
        logits = model(**batch).logits
    labels = batch["labels"]
    tokens = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )
    return torch.stack(
        [tokens[r, s : e - 1].sum() / (labels[r, s + 1 : e] != IGNORE_INDEX).sum() for r, s, e in spans]
    )


def packed_spans(lengths: list[int], width: int, *, flattened: bool) -> list[tuple[int, int, int]]:
    """Each example's span in a batch of all its packed rows, in example order."""
    spans: dict[int, tuple[int, int, int]] = {}
    offset = 0
    for row, group in enumerate(best_fit_decreasing(lengths, width)):
        offset = offset if flattened else 0
        for index in group:
            spans[index] = (0 if flattened else row, offset, offset + lengths[index])
            offset += lengths[index]
    return [spans[i] for i in range(len(lengths))]


@needs_shared_data
@pytest.mark.parametrize("flattened", [False, True], ids=["padded-rows", "flattened"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_examples_have_their_unpacked_losses(
    tiny_lm: Path, tokenizer: Any, attention: str, flattened: bool
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_lm, attn_implementation=attention)
    model.train(False)
    items = tokenize_all(tokenizer, [chat(i) for i in range(7)], 4096)
    lengths = [len(i.input_ids) for i in items]
    width = max(lengths) + min(lengths)  # several rows of 1-3 examples, of different lengths
    rows = [r.as_dict() for r in build_rows(items, width, packing=True)]
    packed = Collator(tokenizer.pad_token_id, packing=True, flatten=flattened)(rows)
    assert 1 < len(rows) < len(items)
    assert flattened or (packed["input_ids"] == tokenizer.pad_token_id).any()  # padding in the batch

    unpacked = Collator(tokenizer.pad_token_id, packing=False)(
        [r.as_dict() for r in build_rows(items, width, packing=False)]
    )
    alone = example_losses(model, unpacked, [(i, 0, n) for i, n in enumerate(lengths)])
    spans = packed_spans(lengths, width, flattened=flattened)
    torch.testing.assert_close(example_losses(model, packed, spans), alone, atol=1e-4, rtol=1e-5)

    # The control: the same batch with an explicit all-ones attention_mask, which makes transformers skip
    # the position_ids boundaries, so each example attends to the ones before it in its row.
    leaky = {**packed, "attention_mask": torch.ones_like(packed["input_ids"])}
    later = [i for i, (_, start, _) in enumerate(spans) if start > 0]
    differences = (example_losses(model, leaky, spans) - alone).abs()[later]
    assert later and (differences > 1e-3).all()
