"""The bank stage: dedupe winners, mixed-model refusal, decontamination with planted MATH-500 rows, and
the artifact the pipeline writes (BankEntry rows, removal lists, PNG histogram of the stated size)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from shared_data import MATH500

from adacot.api.common import TaskType
from adacot.api.difficulty_bank import DedupeSpec, DifficultyBank
from adacot.artifacts import BankEntry, GradedQuestion, Question, read_manifest, read_records, write_records
from adacot.pipelines.difficulty_bank import run_difficulty_bank
from adacot.plots.histogram import write_level_histogram
from adacot.stages.bank import BankError, SourceRows, build_bank, normalise_question


def graded(qid: str, text: str, level: int | None) -> GradedQuestion:
    question = Question(id=qid, task=TaskType.math, problem=text, answer="1", source="pool")
    if level is None:
        return GradedQuestion(question=question, reason="unverifiable reference: gold_unparseable")
    return GradedQuestion(question=question, level=level, solved=level == 0, pass_rate=float(level == 0))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_normalisation_for_dedupe() -> None:
    assert normalise_question("Find  $x+1$\\,,\nif X = 2.") == normalise_question("find $x + 1$, if x=2.")
    assert normalise_question("Find x+1") != normalise_question("Find x+2")


@pytest.mark.parametrize(
    ("rule", "kept_level", "kept_origin"), [("first", 2, "a"), ("hardest", 4, "b"), ("easiest", 2, "a")]
)
def test_dedupe_winner(rule: str, kept_level: int, kept_origin: str) -> None:
    a = SourceRows("a", "m", [graded("1", "What is 1+1?", 2), graded("2", "Other", 0)])
    b = SourceRows("b", "m", [graded("3", "what is 1 + 1 ?", 4), graded("4", "Skipped", None)])
    result = build_bank([a, b], model=None, dedupe=DedupeSpec(on_conflict=rule))  # type: ignore[arg-type]
    (kept,) = [e for e in result.entries if "1" in e.question.problem]
    assert (kept.level, kept.origin) == (kept_level, kept_origin)
    assert len(result.duplicates) == 1 and result.ungraded == 1 and result.read == 4
    assert [e.question.id for e in result.entries] == sorted(e.question.id for e in result.entries)


def test_mixed_models_are_refused_with_every_source_named() -> None:
    a = SourceRows("runs/a", "models/qwen-7b", [graded("1", "x", 1)])
    b = SourceRows("runs/b", "models/qwen-32b", [graded("2", "y", 1)])
    with pytest.raises(BankError, match=r"runs/a: models/qwen-7b; runs/b: models/qwen-32b"):
        build_bank([a, b], model=None, dedupe=DedupeSpec())
    with pytest.raises(BankError, match="bank spec: other"):
        build_bank([a], model="other", dedupe=DedupeSpec())
    with pytest.raises(BankError, match="no source names its model"):
        build_bank([SourceRows("f.jsonl", None, [graded("1", "x", 1)])], model=None, dedupe=DedupeSpec())


def test_one_id_for_two_questions_is_an_error() -> None:
    a = SourceRows("a", "m", [graded("7", "first text", 1)])
    b = SourceRows("b", "m", [graded("7", "second text", 2)])
    with pytest.raises(BankError, match="'7' names different questions in a and b"):
        build_bank([a, b], model=None, dedupe=DedupeSpec())


def bank_resource(tmp_path: Path, sources: list[dict[str, Any]], **spec: Any) -> DifficultyBank:
    return DifficultyBank.model_validate(
        {"kind": "DifficultyBank", "metadata": {"name": "pool-bank"}, "spec": {"sources": sources, **spec}}
    )


def test_bank_pipeline_with_planted_math500_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADACOT_TERMINATION_LOG", str(tmp_path / "termination"))
    with MATH500.open() as handle:
        bench = [json.loads(line)["problem"] for line in handle][:40]
    pool = [
        graded(f"p{i}", f"Pool question {i}: how many ways can {i} friends sit in a row of chairs?", i % 6)
        for i in range(20)
    ]
    planted = [graded("leak1", bench[3], 2), graded("leak2", "Hint: " + bench[11], 5)]
    ungraded = [graded("bad", "A question with a broken reference.", None)]
    rows_file = tmp_path / "graded.jsonl"
    write_records(
        rows_file,
        pool + planted + ungraded + [graded("dup", pool[0].question.problem.upper(), 3)],
        GradedQuestion,
    )
    benchmark_file = tmp_path / "math500.jsonl"
    benchmark_file.write_text("".join(json.dumps({"problem": p, "answer": "0"}) + "\n" for p in bench))
    resource = bank_resource(
        tmp_path,
        [{"path": str(rows_file)}],
        model={"path": "/models/student"},
        decontamination={"benchmarks": [{"path": str(benchmark_file)}], "ngram": 8},
    )
    out = tmp_path / "bank"
    summary = run_difficulty_bank(resource, out)

    entries = list(read_records(out, BankEntry))
    assert sorted(e.question.id for e in entries) == sorted(f"p{i}" for i in range(20))
    assert {e.model for e in entries} == {"/models/student"}
    assert summary["contaminated_removed"] == 2 and summary["duplicates_removed"] == 1
    assert summary["ungraded"] == 1 and summary["questions"] == 20
    assert summary["level_counts"] == {str(lv): sum(1 for i in range(20) if i % 6 == lv) for lv in range(6)}
    removed = [json.loads(line) for line in (out / "removed" / "contaminated.jsonl").read_text().splitlines()]
    assert {(r["question_id"], r["benchmark"]) for r in removed} == {
        ("leak1", "math500"),
        ("leak2", "math500"),
    }
    assert all(len(r["ngram"].split()) == 8 for r in removed)
    assert png_size(out / "histogram.png") == (800, 480)
    assert "| 0 | 4 | 20.0 % |" in (out / "SUMMARY.md").read_text()
    assert read_manifest(out).metrics["questions"] == 20
    assert json.loads((tmp_path / "termination").read_text())["questions"] == 20
    assert run_difficulty_bank(resource, out) == summary  # complete: not rebuilt


def test_histogram_png_has_the_requested_size(tmp_path: Path) -> None:
    path = write_level_histogram(
        {0: 3, 1: 0, 5: 9}, tmp_path / "h.png", title="t", width_px=640, height_px=320
    )
    assert png_size(path) == (640, 320)
