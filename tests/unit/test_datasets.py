"""Loading question datasets (adacot.artifacts.datasets): every input form, mapping, and bad-row handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import SHARED_DATA

from adacot.api.common import DatasetSpec
from adacot.artifacts.datasets import DatasetError, load_questions
from adacot.artifacts.manifest import Manifest
from adacot.artifacts.rows import question_id
from adacot.artifacts.store import ArtifactDir

DATA = SHARED_DATA
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared benchmark data not present")

ROWS: list[dict[str, Any]] = [
    {"problem": "What is 1+1?", "answer": "2", "subject": "arith"},
    {"problem": "What is 2+3?", "answer": 5, "subject": "arith"},
    {"problem": "Solve x^2=4 for x>0.", "answer": "2", "subject": "algebra"},
]


def spec(path: Path, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec.model_validate({"path": str(path), **kwargs})


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@needs_data
def test_math500_real_file() -> None:
    loaded = load_questions(spec(DATA / "math500.jsonl"))
    assert loaded.counts == {"rows": 500, "questions": 500, "quarantined": 0}
    first = loaded.questions[0]
    assert first.problem.startswith("Convert the point $(0,3)$ in rectangular coordinates")
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.source == "math500"
    assert first.id == question_id(first.problem, "math500")
    assert len({q.id for q in loaded.questions}) == 500


@needs_data
def test_gsm8k_with_problem_mapped_from_question() -> None:
    loaded = load_questions(spec(DATA / "gsm8k_test.jsonl", fields={"problem": "question"}))
    assert len(loaded.questions) == 1319
    assert loaded.questions[0].problem.startswith("Janet’s ducks lay 16 eggs")
    assert loaded.questions[0].answer is not None and loaded.questions[0].answer.endswith("#### 18")
    assert "question" not in loaded.questions[0].meta


@needs_data
def test_limit_counts_rows() -> None:
    loaded = load_questions(spec(DATA / "aime24.jsonl", limit=5))
    assert loaded.rows_read == len(loaded.questions) == 5
    assert loaded.questions[0].problem.startswith("Every morning Aya goes for a $9$-kilometer-long walk")


@needs_data
def test_mbppplus_as_code_with_tests_from_a_field(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    with (DATA / "mbppplus.jsonl").open() as handle:
        for line, _ in zip(handle, range(20), strict=False):
            row = json.loads(line)
            check = {"entry_point": row["entry_point"], "inputs": row["base_input"], "atol": row["atol"]}
            # Half as an object, half as a JSON string: both forms are accepted.
            row["checks"] = check if len(rows) % 2 else json.dumps(check)
            rows.append(row)
    path = write_jsonl(tmp_path / "mbpp_small.jsonl", rows)
    loaded = load_questions(
        spec(path, task="code", fields={"id": "task_id", "problem": "prompt", "tests": "checks"})
    )
    assert len(loaded.questions) == 20
    first = loaded.questions[0]
    assert (first.id, first.task.value, first.answer) == ("Mbpp/2", "code", None)
    assert first.tests == {
        "entry_point": "similar_elements",
        "inputs": rows[0]["base_input"],
        "atol": rows[0]["atol"],
    }
    assert first.meta["canonical_solution"] == rows[0]["canonical_solution"]
    assert {"task_id", "prompt", "checks"}.isdisjoint(first.meta)


def test_field_mapping_id_source_and_numeric_answer(tmp_path: Path) -> None:
    rows = [{"qid": 7, "text": "What is 2+3?", "gold": 5, "topic": "arith"}]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    mapping = {"id": "qid", "problem": "text", "answer": "gold", "source": "topic"}
    question = load_questions(spec(path, fields=mapping)).questions[0]
    assert (question.id, question.problem, question.answer, question.source) == (
        "7",
        "What is 2+3?",
        "5",
        "arith",
    )
    assert question.meta == {}


def test_same_questions_from_jsonl_parquet_shards_and_hf_disk(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "toy.jsonl", ROWS)
    parquet = tmp_path / "toy.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "answer": str(r["answer"])} for r in ROWS]), parquet)
    shards = tmp_path / "toy"
    shards.mkdir()
    write_jsonl(shards / "b-2.jsonl", ROWS[2:])
    pq.write_table(
        pa.Table.from_pylist([{**r, "answer": str(r["answer"])} for r in ROWS[:2]]), shards / "a-1.parquet"
    )
    (shards / "README.md").write_text("not a shard")
    hf_dir = tmp_path / "hf" / "toy"
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_list([{**r, "answer": str(r["answer"])} for r in ROWS])}
    ).save_to_disk(str(hf_dir))
    expected = [(q.problem, q.answer) for q in load_questions(spec(jsonl)).questions]
    assert expected[1] == ("What is 2+3?", "5")
    for source in (parquet, shards):
        loaded = load_questions(spec(source))
        assert [(q.problem, q.answer) for q in loaded.questions] == expected
        assert [q.id for q in loaded.questions] == [q.id for q in load_questions(spec(jsonl)).questions]
    loaded = load_questions(spec(hf_dir, split="test"))
    assert [(q.problem, q.answer) for q in loaded.questions] == expected
    assert loaded.questions[0].meta == {"subject": "arith"}


def test_hf_disk_split_handling(tmp_path: Path) -> None:
    rows = [{"problem": "p1", "answer": "1"}, {"problem": "p2", "answer": "2"}]
    single = tmp_path / "single"
    datasets.Dataset.from_list(rows).save_to_disk(str(single))
    assert len(load_questions(spec(single)).questions) == 2
    multi = tmp_path / "multi"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:1])}
    ).save_to_disk(str(multi))
    with pytest.raises(DatasetError, match=r"DatasetDict with splits \['test', 'train'\]; set split"):
        load_questions(spec(multi))
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_questions(spec(multi, split="dev"))
    bad = [{"problem": "p1", "answer": "1"}, {"problem": "p2", "answer": ""}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(bad)}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DatasetError, match=r"bad\[train\]:row 1: field 'answer' is empty"):
        load_questions(spec(tmp_path / "bad"))


GOOD = json.dumps({"problem": "What is 1+1?", "answer": "2"})
CODE_GOOD = json.dumps({"problem": "Write f.", "tests": {"entry_point": "f"}})


@pytest.mark.parametrize(
    ("lines", "task", "message"),
    [
        (
            [GOOD, '{"problem": "x", "answer": '],
            "math",
            r"q\.jsonl:2: not valid JSON \(Expecting value at column 28\)",
        ),
        ([GOOD, "[1, 2]"], "math", r"q\.jsonl:2: expected a JSON object, got a list"),
        (
            [GOOD, "", json.dumps({"problem": "x"})],
            "math",
            r"q\.jsonl:3: field 'answer' is missing \(task math needs a reference answer; "
            r"set fields\.answer to map another field\)",
        ),
        (
            [json.dumps({"question": "x", "answer": "1"})],
            "math",
            r"q\.jsonl:1: field 'problem' is missing .*fields\.problem",
        ),
        ([json.dumps({"problem": "  ", "answer": "1"})], "math", r"q\.jsonl:1: field 'problem' is empty"),
        (
            [json.dumps({"problem": "x", "answer": ["1"]})],
            "math",
            r"q\.jsonl:1: field 'answer' must be a string, got a list",
        ),
        (
            [json.dumps({"problem": "x", "answer": True})],
            "math",
            r"q\.jsonl:1: field 'answer' must be a string, got a boolean",
        ),
        (
            [json.dumps({"problem": 3.5, "answer": "1"}), json.dumps({"problem": {}, "answer": "1"})],
            "math",
            r"q\.jsonl:2: field 'problem' must be a string, got an object",
        ),
        (
            [CODE_GOOD, json.dumps({"problem": "x"})],
            "code",
            r"q\.jsonl:2: field 'tests' is missing \(task code needs tests",
        ),
        (
            [json.dumps({"problem": "x", "tests": [1]})],
            "code",
            r"q\.jsonl:1: field 'tests' must be a JSON object .*got a list",
        ),
        (
            [json.dumps({"problem": "x", "tests": "{oops"})],
            "code",
            r"q\.jsonl:1: field 'tests' is a string but not valid JSON",
        ),
        (
            [json.dumps({"problem": "x", "tests": "[1]"})],
            "code",
            r"q\.jsonl:1: field 'tests' must be a JSON object",
        ),
        ([GOOD, GOOD], "math", r"q\.jsonl:2: duplicate question id '[0-9a-f]{16}' \(first at .*q\.jsonl:1\)"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, lines: list[str], task: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=message):
        load_questions(spec(path, task=task))


def test_bad_id_field_and_non_utf8(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"id": [1], "problem": "x", "answer": "1"}])
    with pytest.raises(
        DatasetError, match=r"q\.jsonl:1: field 'id' must be a string or integer id, got a list"
    ):
        load_questions(spec(path, fields={"id": "id"}))
    path.write_bytes(GOOD.encode() + b"\n" + b'{"problem": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"q\.jsonl:2: not UTF-8 text \(byte 13\)"):
        load_questions(spec(path))


def test_parquet_bad_row_names_row_index(tmp_path: Path) -> None:
    path = tmp_path / "q.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"problem": "x", "answer": "1"}, {"problem": "y", "answer": None}]), path
    )
    with pytest.raises(DatasetError, match=r"q\.parquet:row 1: field 'answer' is missing"):
        load_questions(spec(path))


def test_configuration_errors_come_before_reading(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset path .*nope\.jsonl does not exist"):
        load_questions(spec(tmp_path / "nope.jsonl"))
    with pytest.raises(DatasetError, match=r"task math needs a reference answer; set fields\.answer"):
        load_questions(spec(tmp_path / "nope.jsonl", fields={"answer": None}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no shard files"):
        load_questions(spec(tmp_path / "empty"))
    (tmp_path / "q.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="unknown file type"):
        load_questions(spec(tmp_path / "q.csv"))


def test_quarantine_collects_bad_rows_and_the_manifest_counts_them(tmp_path: Path) -> None:
    lines = [
        GOOD,
        "{broken",
        json.dumps({"problem": "What is 2+2?", "answer": "4"}),
        json.dumps({"problem": "no answer"}),
        GOOD,  # duplicate of line 1
        json.dumps({"problem": "What is 3+3?", "answer": "6"}),
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_questions(spec(path, on_bad_row="quarantine"))
    assert loaded.counts == {"rows": 6, "questions": 3, "quarantined": 3}
    assert [(r.line, r.reason.split(" (")[0]) for r in loaded.quarantined] == [
        (2, "not valid JSON"),
        (4, "field 'answer' is missing"),
        (5, f"duplicate question id '{loaded.questions[0].id}'"),
    ]
    assert loaded.quarantined[0].raw == "{broken" and loaded.quarantined[0].file == str(path)
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_quarantine(loaded.quarantined)
    result = artifact.finalize(Manifest(kind="GradingRun", name="q"))
    assert (result.quarantined, result.quarantine_file) == (3, "quarantine.jsonl")
