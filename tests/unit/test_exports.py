"""TRL messages, ShareGPT and Alpaca rows from kept traces, and LLaMA-Factory's dataset_info entries."""

from __future__ import annotations

import pytest

from adacot.artifacts.rows import CotTrace, Message, SftExample, Verdict
from adacot.stages.exports import alpaca_row, dataset_info, export_row, sft_example, sharegpt_row


def trace() -> CotTrace:
    return CotTrace(
        question_id="q1", level=2, source="math500", prompt="What is 2+2?",
        reasoning="add", answer="\\boxed{4}", text="<think>\nadd\n</think>\n\n\\boxed{4}",
        verdict=Verdict(correct=True, reason="equivalent"), attempt=1,
    )  # fmt: skip


def test_trl_messages() -> None:
    example = sft_example(trace())
    dumped = example.model_dump(mode="json")
    assert dumped["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n\\boxed{4}"},
    ]
    assert (example.question_id, example.level, example.source) == ("q1", 2, "math500")
    assert sft_example(trace(), system="Be brief.").messages[0] == Message(role="system", content="Be brief.")


def test_sharegpt() -> None:
    assert sharegpt_row(sft_example(trace())) == {
        "conversations": [
            {"from": "human", "value": "What is 2+2?"},
            {"from": "gpt", "value": "<think>\nadd\n</think>\n\n\\boxed{4}"},
        ]
    }
    assert sharegpt_row(sft_example(trace(), system="S"))["system"] == "S"


def test_alpaca() -> None:
    assert alpaca_row(sft_example(trace(), system="S")) == {
        "instruction": "What is 2+2?", "input": "",
        "output": "<think>\nadd\n</think>\n\n\\boxed{4}", "system": "S",
    }  # fmt: skip


def test_alpaca_refuses_multi_turn() -> None:
    turns = [Message(role="user", content="a"), Message(role="assistant", content="b")] * 2
    example = SftExample(messages=turns, question_id="q", source="s")
    with pytest.raises(ValueError, match="one user and one assistant turn"):
        alpaca_row(example)
    assert len(sharegpt_row(example)["conversations"]) == 4


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export_row("parquet", sft_example(trace()))


def test_dataset_info_points_at_the_files() -> None:
    info = dataset_info("job", ["sharegpt", "alpaca"])
    assert info["job_sharegpt"]["file_name"] == "sharegpt.jsonl"
    assert info["job_sharegpt"]["formatting"] == "sharegpt"
    assert info["job_sharegpt"]["columns"]["messages"] == "conversations"
    assert info["job_alpaca"]["columns"]["response"] == "output"
    assert dataset_info("job", ["alpaca"]).keys() == {"job_alpaca"}
