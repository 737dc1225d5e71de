"""SFT data on real chat records: assistant-only labels at exact positions, row formats, over-long
examples dropped and counted (packing: test_sft_packing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sft_helpers import chat
from shared_data import needs_shared_data
from transformers import AutoTokenizer

from adacot.training.data import (
    IGNORE_INDEX,
    TemplateError,
    TokenizeStats,
    messages_of,
    tokenize,
    tokenize_all,
)

pytestmark = needs_shared_data
ASSISTANT_OPEN = "<|im_start|>assistant\n"
END = "<|im_end|>\n"


@pytest.fixture(scope="module")
def tokenizer(tiny_lm: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_lm)


def labelled_positions(labels: list[int]) -> list[int]:
    return [i for i, label in enumerate(labels) if label != IGNORE_INDEX]


def test_single_turn_labels_exactly_the_assistant_turn(tokenizer: Any) -> None:
    messages = chat(0)
    item = tokenize(tokenizer, messages)
    prefix = f"<|im_start|>user\n{messages[0]['content']}{END}{ASSISTANT_OPEN}"
    start = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])

    assert labelled_positions(item.labels) == list(range(start, len(item.input_ids)))
    assert [item.labels[i] for i in range(start, len(item.labels))] == item.input_ids[start:]
    assert tokenizer.decode(item.input_ids[:start]) == prefix
    assert tokenizer.decode(item.input_ids[start:]) == messages[1]["content"] + END
    im_start, im_end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert item.input_ids.count(im_end) == 2 and item.labels.count(im_end) == 1  # only the answer's
    assert im_start not in [item.labels[i] for i in labelled_positions(item.labels)]


def test_multi_turn_with_system_labels_each_assistant_turn(tokenizer: Any) -> None:
    first, second = chat(1), chat(2)
    messages = [{"role": "system", "content": "Reason, then answer."}, *first, *second]
    item = tokenize(tokenizer, messages)
    positions = labelled_positions(item.labels)
    runs: list[list[int]] = []
    for p in positions:
        if runs and runs[-1][-1] == p - 1:
            runs[-1].append(p)
        else:
            runs.append([p])

    assert len(runs) == 2
    decoded = [tokenizer.decode([item.input_ids[i] for i in run]) for run in runs]
    assert decoded == [first[1]["content"] + END, second[1]["content"] + END]
    unlabelled = tokenizer.decode(
        [t for t, lab in zip(item.input_ids, item.labels, strict=True) if lab == IGNORE_INDEX]
    )
    assert "Reason, then answer." in unlabelled and first[0]["content"] in unlabelled
    assert "<think>" not in unlabelled and "The answer is" not in unlabelled  # no answer text masked


def test_all_tokens_labelled_without_assistant_only(tokenizer: Any) -> None:
    item = tokenize(tokenizer, chat(0), assistant_only=False)
    assert item.labels == item.input_ids


def test_template_that_rewrites_history_is_refused(tokenizer: Any) -> None:
    class Rewriting:
        """A template that puts a count of turns first: no rendering is a prefix of the whole."""

        def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
            return f"{len(messages)} turns\n" + "".join(m["content"] for m in messages)

    with pytest.raises(TemplateError, match="prefix"):
        tokenize(Rewriting(), chat(0))


@pytest.mark.parametrize(
    ("fmt", "row", "expected"),
    [
        (
            "messages",
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            [("user", "q"), ("assistant", "a")],
        ),
        (
            "sharegpt",
            {
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
                "system": "s",
            },
            [("system", "s"), ("user", "q"), ("assistant", "a")],
        ),
        (
            "alpaca",
            {"instruction": "q", "input": "x", "output": "a"},
            [("user", "q\n\nx"), ("assistant", "a")],
        ),
    ],
)
def test_row_formats(fmt: str, row: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert [(m["role"], m["content"]) for m in messages_of(row, fmt)] == expected


@pytest.mark.parametrize(
    ("fmt", "row", "message"),
    [
        ("sharegpt", {"conversations": [{"from": "robot", "value": "q"}]}, "unknown sharegpt speaker"),
        ("sharegpt", {"conversations": [{"from": "human", "value": "q"}]}, "end with an assistant"),
        ("alpaca", {"instruction": "q"}, "needs 'instruction' and 'output'"),
        ("csv", {}, "unknown dataset format"),
    ],
)
def test_bad_rows_are_clear_errors(fmt: str, row: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        messages_of(row, fmt, "data.jsonl:3")


def test_over_long_examples_dropped_and_counted(tokenizer: Any) -> None:
    conversations = [chat(i) for i in range(6)]
    lengths = [len(tokenize(tokenizer, c).input_ids) for c in conversations]
    limit = sorted(lengths)[2]
    stats = TokenizeStats()
    kept = tokenize_all(tokenizer, conversations, limit, stats=stats)

    assert [len(k.input_ids) for k in kept] == [n for n in lengths if n <= limit]
    assert stats.dropped_too_long == sum(n > limit for n in lengths) > 0
    assert stats.examples == len(kept) and stats.tokens == sum(len(k.input_ids) for k in kept)


def test_reads_a_distillation_artifact_and_plain_files(tmp_path: Path) -> None:
    from adacot.artifacts.manifest import Manifest
    from adacot.artifacts.rows import Message, SftExample
    from adacot.artifacts.store import ArtifactDir
    from adacot.training.data import read_conversations

    examples = [
        SftExample(
            messages=[Message(role="user", content=f"q{i}"), Message(role="assistant", content=f"a{i}")],
            question_id=f"q{i}",
            level=1,
            source="math500",
        )
        for i in range(3)
    ]
    artifact = ArtifactDir(tmp_path / "distill").prepare()
    artifact.write_shard("part-00000.jsonl", examples[:2], SftExample)
    artifact.write_shard("part-00001.jsonl", examples[2:], SftExample)
    (artifact.root / "exports").mkdir()
    (artifact.root / "exports" / "sharegpt.jsonl").write_text('{"conversations": []}\n')  # not a data file
    artifact.finalize(Manifest(kind="DistillationJob", name="d"))
    found = list(read_conversations(artifact.root, "messages"))
    assert [c[1]["content"] for c in found] == ["a0", "a1", "a2"]

    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "r", "output": "b"}\n')
    assert [c[0]["content"] for c in read_conversations(alpaca, "alpaca")] == ["q", "r"]
    with pytest.raises(ValueError, match="does not exist"):
        list(read_conversations(tmp_path / "nothing", "messages"))
