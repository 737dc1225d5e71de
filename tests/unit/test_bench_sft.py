"""benchmarks/sft.py's token accounting, without training: the collator counter on adacot's real
collator (packed and unpacked batches counted by hand) and the GSM8K chat records it trains on."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from shared_data import SHARED_DATA, needs_shared_data

from adacot.training.data import Tokenized
from adacot.training.packing import Collator, build_rows

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PAD = 0


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # The script imports its sibling benchmarks/bench_support.py, as it does when run as a script.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location("bench_sft", BENCHMARKS / "sft.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def _items(*lengths: int) -> list[Tokenized]:
    # Ids start at 1: the pad id (0) never occurs in real tokens, as with the chat template's text.
    return [Tokenized(list(range(1, n + 1)), list(range(1, n + 1))) for n in lengths]


@pytest.mark.parametrize(
    ("packing", "real", "total"),
    [
        (False, 10, 15),  # rows 3, 5, 2 padded to 5
        (True, 10, 16),  # rows 3+5 and 2, padded to 8
    ],
)
def test_counter_counts_what_the_model_receives(
    bench: ModuleType, packing: bool, real: int, total: int
) -> None:
    rows = build_rows(_items(3, 5, 2), max_seq_length=8, packing=packing)
    counter = bench.TokenCounter(Collator(PAD, packing=packing), PAD)
    batch = counter([r.as_dict() for r in rows])
    assert batch["input_ids"].numel() == total  # the batch passes through unchanged
    assert counter.batches == [(real, total)]


def test_token_figures_share_over_all_and_per_batch(bench: ModuleType) -> None:
    figures = bench.token_figures([(3, 4), (10, 10)])
    assert figures["non_padding_tokens"] == 13 and figures["total_tokens"] == 14
    assert figures["non_padding_share"] == pytest.approx(13 / 14)
    assert figures["mean_batch_share"] == pytest.approx((0.75 + 1.0) / 2)


@needs_shared_data
def test_gsm8k_records_are_two_turn_chats(bench: ModuleType) -> None:
    chats = bench.gsm8k_conversations(SHARED_DATA, limit=5)
    assert len(chats) == 5
    assert [[m["role"] for m in chat] for chat in chats] == [["user", "assistant"]] * 5
    assert "####" in chats[0][1]["content"]
    assert len({len(chat[1]["content"]) for chat in chats}) > 1  # variable length, as the benchmark needs
