"""Record types and their JSONL / Parquet files (adacot.artifacts.rows, adacot.artifacts.jsonio)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel, ValidationError

from adacot.api.common import TaskType
from adacot.artifacts.jsonio import (
    PARQUET_BATCH,
    ArtifactError,
    iter_records,
    parquet_json_columns,
    sha256_file,
    write_records,
)
from adacot.artifacts.rows import (
    Attempt,
    BankEntry,
    CotTrace,
    GradedQuestion,
    Message,
    QuarantinedRow,
    Question,
    SftExample,
    Verdict,
    question_id,
)

MATH_Q = Question(
    id="q1",
    task=TaskType.math,
    problem="What is 1+1?",
    answer="2",
    source="toy",
    meta={"level": "Level 1", "nested": {"a": [1, 2]}},
)
CODE_Q = Question(
    id="c1",
    task=TaskType.code,
    problem="Write f.",
    source="mbpp",
    tests={"entry_point": "f", "inputs": [[1], [2]], "outputs": [2, 3], "atol": 0},
)
VERDICT = Verdict(correct=True, reason="equivalent", extracted="2")
ATTEMPT = Attempt(
    question_id="q1",
    sample=0,
    text="1+1 = \\boxed{2}",
    finish_reason="stop",
    prompt_tokens=12,
    completion_tokens=7,
    latency_s=0.25,
    verdict=VERDICT,
    step_scores=[0.9, 0.4],
    score=0.4,
)
TRACE = CotTrace(
    question_id="q1",
    level=3,
    source="toy",
    prompt="What is 1+1?",
    reasoning="one plus one",
    answer="\\boxed{2}",
    text="<think>\none plus one\n</think>\n\n\\boxed{2}",
    verdict=VERDICT,
    attempt=1,
    completion_tokens=20,
    finish_reason="stop",
)
SFT = SftExample(
    messages=[Message(role="user", content="What is 1+1?"), Message(role="assistant", content=TRACE.text)],
    question_id="q1",
    level=3,
    source="toy",
)
SAMPLES: list[BaseModel] = [
    MATH_Q,
    CODE_Q,
    ATTEMPT,
    GradedQuestion(question=MATH_Q, attempts=[ATTEMPT], pass_rate=1.0, solved=True, level=0),
    GradedQuestion(question=CODE_Q, reason="gold_unparseable"),
    BankEntry(question=MATH_Q, level=4, score=0.2, pass_rate=0.0, model="qwen-tiny", origin="ns/grade-1"),
    TRACE,
    SFT,
    QuarantinedRow(file="q.jsonl", line=3, reason="not valid JSON", raw="{oops"),
]


def test_question_id_is_stable_short_hex_and_whitespace_insensitive() -> None:
    ident = question_id("What is  1+1?\r\n", "math500")
    assert ident == question_id("What is 1+1?", "math500")
    assert len(ident) == 16 and int(ident, 16) >= 0
    assert ident != question_id("What is 1+1?", "gsm8k")
    assert ident != question_id("What is 1+2?", "math500")
    # Pinned: ids name records in artifacts on disk, so the recipe must never drift silently.
    assert ident == "f86a267b0e34a0ae"  # sha256("math500\\x00What is 1+1?")[:16]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": TaskType.math, "answer": None}, "task math needs a reference answer"),
        ({"task": TaskType.code, "answer": None}, "task code needs tests"),
        ({"task": TaskType.math, "answer": "2", "problem": ""}, "problem"),
    ],
)
def test_question_requires_reference_for_its_task(kwargs: dict[str, object], message: str) -> None:
    fields = {"id": "q", "problem": "p", "source": "s", **kwargs}
    with pytest.raises(ValidationError, match=message):
        Question.model_validate(fields)


def test_record_invariants() -> None:
    with pytest.raises(ValidationError, match="no level and no reason"):
        GradedQuestion(question=MATH_Q)
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        BankEntry(question=MATH_Q, level=6, model="m", origin="o")
    with pytest.raises(ValidationError, match="last message must be the assistant"):
        SftExample(
            messages=[Message(role="assistant", content="a"), Message(role="user", content="b")],
            question_id="q",
            source="s",
        )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Question.model_validate({**MATH_Q.model_dump(), "typo": 1})


def test_keys_identify_records() -> None:
    assert MATH_Q.key == "q1"
    assert ATTEMPT.key == "q1#0"
    assert TRACE.key == "q1#1"
    assert SFT.key == "q1"
    assert GradedQuestion(question=MATH_Q, level=2, score=0.1).key == "q1"


def test_sft_example_is_trl_conversational() -> None:
    line = json.loads(SFT.model_dump_json())
    assert line["messages"] == [
        {"role": "user", "content": "What is 1+1?"},
        {"role": "assistant", "content": TRACE.text},
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(tmp_path: Path, record: BaseModel, suffix: str) -> None:
    path = tmp_path / f"records{suffix}"
    second = record.model_copy()
    stats = write_records(path, [record, second], type(record))
    assert stats.records == 2
    assert stats.bytes == path.stat().st_size
    assert stats.sha256 == sha256_file(path)
    assert list(iter_records(path, type(record))) == [record, second]


def test_parquet_native_scalars_and_json_nested_columns(tmp_path: Path) -> None:
    path = tmp_path / "attempts.parquet"
    write_records(path, [ATTEMPT], Attempt)
    schema = pq.read_schema(path)
    assert str(schema.field("sample").type) == "int64"
    assert str(schema.field("latency_s").type) == "double"
    assert str(schema.field("text").type) == "string"
    assert set(parquet_json_columns(schema)) == {"verdict", "step_scores"}
    row = pq.read_table(path).to_pylist()[0]
    assert json.loads(row["verdict"])["reason"] == "equivalent"


def test_parquet_many_batches_and_empty(tmp_path: Path) -> None:
    records = [ATTEMPT.model_copy(update={"sample": i}) for i in range(PARQUET_BATCH * 2 + 7)]
    path = tmp_path / "many.parquet"
    assert write_records(path, records, Attempt).records == len(records)
    assert [r.sample for r in iter_records(path, Attempt)] == list(range(len(records)))
    empty = tmp_path / "empty.parquet"
    assert write_records(empty, [], Attempt).records == 0
    assert list(iter_records(empty, Attempt)) == []


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = MATH_Q.model_dump_json()
    path.write_text(f"{good}\n\n{json.dumps({'id': 'x'})}\n")
    records = iter_records(path, Question)
    assert next(records) == MATH_Q
    with pytest.raises(ArtifactError, match=r"q\.jsonl:3: not a valid Question: task: Field required"):
        next(records)


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"unknown record file type"):
        write_records(tmp_path / "x.csv", [MATH_Q], Question)
