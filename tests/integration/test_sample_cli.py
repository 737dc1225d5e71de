"""`adacot sample` through click's CliRunner on a real bank artifact (built by `adacot bank` from graded
rows written in tmp): the written sample artifact, its manifest (target vs achieved, moves), the table,
determinism across runs, and each bad input as a one-line error before anything is written."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adacot.api.common import TaskType
from adacot.artifacts import (
    ArtifactDir,
    BankEntry,
    GradedQuestion,
    Manifest,
    Question,
    read_manifest,
    read_records,
    verify_artifact,
)
from adacot.artifacts.jsonio import write_records
from adacot.cli.main import main

pytestmark = pytest.mark.integration

#: Questions per level 0..5 in the test bank; level 5 is deliberately thin.
BANK_SIZES = (40, 30, 30, 20, 10, 3)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DifficultyBank artifact written by `adacot bank` from graded rows of two sources."""
    root = tmp_path_factory.mktemp("bank")
    rows = []
    for level, size in enumerate(BANK_SIZES):
        for i in range(size):
            source = "gsm8k" if i % 3 else "math500"
            q = Question(id=f"L{level}-{i:02d}", task=TaskType.math, problem=f"Level {level} q {i}: 2+{i}?",
                         answer=str(2 + i), source=source)  # fmt: skip
            rows.append(GradedQuestion(question=q, level=level, solved=level == 0))
    write_records(root / "graded.jsonl", rows, GradedQuestion)
    result = invoke(
        "bank", "--source", str(root / "graded.jsonl"), "--model", "models/s", "--out", str(root / "b")
    )
    assert result.exit_code == 0, result.output
    return root / "b"


def run_sample(bank: Path, out: Path, *extra: str) -> Result:
    return invoke("sample", "--bank", str(bank), "--out", str(out), *extra)


def test_prior_sample_with_shortfall_moves(bank_dir: Path, tmp_path: Path) -> None:
    result = run_sample(bank_dir, tmp_path / "s", "--size", "60", "--seed", "3", "--prior", "5:4:3:2:1")
    assert result.exit_code == 0, result.output
    # 60 by 5:4:3:2:1 over levels 1..5 = 20/16/12/8/4; level 5 holds 3, its missing 1 goes to level 4.
    entries = list(read_records(tmp_path / "s", BankEntry))
    assert Counter(e.level for e in entries) == {1: 20, 2: 16, 3: 12, 4: 9, 5: 3}
    assert len({e.question.id for e in entries}) == 60
    manifest = verify_artifact(tmp_path / "s")
    assert manifest.kind == "Sample" and manifest.record_type == "BankEntry" and manifest.total_records == 60
    assert manifest.seed == 3 and manifest.spec["distribution"]["kind"] == "P_prior"
    levels = manifest.metrics["levels"]
    assert levels["5"] == {"target_share": 1 / 15, "achieved_share": 3 / 60, "target": 4, "available": 3,
                           "taken": 3}  # fmt: skip
    assert manifest.metrics["moves"] == [{"from": 5, "to": 4, "count": 1}]
    assert json.loads((tmp_path / "s" / "summary.json").read_text()) == manifest.metrics
    # The table: one row per level with target and achieved, and the move in words.
    assert "    5      6.67        4          3       3       5.00" in result.output
    assert "level 5 short by 1 (wanted 4, the bank has 3): moved 1 to level 4" in result.output
    # Same seed, same bank: the same ids; another seed: others.
    again = run_sample(bank_dir, tmp_path / "t", "--size", "60", "--seed", "3", "--prior", "5:4:3:2:1")
    other = run_sample(bank_dir, tmp_path / "u", "--size", "60", "--seed", "4", "--prior", "5:4:3:2:1")
    assert again.exit_code == other.exit_code == 0
    same = [e.question.id for e in read_records(tmp_path / "t", BankEntry)]
    assert same == [e.question.id for e in entries]
    assert [e.question.id for e in read_records(tmp_path / "u", BankEntry)] != same


def test_table_balanced_by_source(bank_dir: Path, tmp_path: Path) -> None:
    result = run_sample(
        bank_dir, tmp_path / "s", "--size", "20", "--table", "0=1,1=1", "--balance-by", "source"
    )
    assert result.exit_code == 0, result.output
    entries = list(read_records(tmp_path / "s", BankEntry))
    by = Counter((e.level, e.question.source) for e in entries)
    assert by == {(0, "gsm8k"): 5, (0, "math500"): 5, (1, "gsm8k"): 5, (1, "math500"): 5}
    assert read_manifest(tmp_path / "s").spec["balanceBy"] == "source"


def test_p_eval_from_a_grading_artifact(bank_dir: Path, tmp_path: Path) -> None:
    grading = tmp_path / "eval"
    grading.mkdir()
    # A grading run's summary.json; read_summary insists on a complete artifact, so make one.
    artifact = ArtifactDir(grading).prepare()
    artifact.write_shard("part-00000.jsonl", [], GradedQuestion)
    counts = {"0": 10, "1": 5, "2": 5, "3": 0, "4": 0, "5": 0}
    (grading / "summary.json").write_text(json.dumps({"level_counts": counts}))
    artifact.finalize(Manifest(kind="GradingRun", name="eval"))
    result = run_sample(
        bank_dir, tmp_path / "s", "--size", "20", "--from-grading", str(grading), "--exclude-easy"
    )
    assert result.exit_code == 0, result.output
    assert Counter(e.level for e in read_records(tmp_path / "s", BankEntry)) == {1: 10, 2: 10}
    assert "P_eval [20 graded, level 0 excluded]" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "200", "--prior", "5:4:3:2:1"], "N=200 is larger than the bank (133 questions)"),
        (["--size", "30", "--table", "5=1", "--shortfall", "fail"], "level 5: wanted 30, available 3"),
        # excludeEasy: 93 questions outside level 0, N=100; level 0 must not make up the difference.
        (
            ["--size", "100", "--table", "0=1,1=1,2=1,3=1,4=1,5=1", "--exclude-easy"],
            "only 93 questions are available outside the excluded level 0 (level 1: 30, level 2: 30, "
            "level 3: 20, level 4: 10, level 5: 3), N=100 asked",
        ),
        (["--size", "100", "--prior", "5:4:3:2:1"], "only 93 questions are available outside the excluded"),
        (["--size", "10", "--prior", "1:2:3:4:5"], "strictly decreasing"),
        (["--size", "10", "--prior", "5:4:x"], "expected numbers separated by ':'"),
        (["--size", "10", "--table", "7=1"], "keys must be levels 0 to 5"),
        (["--size", "10", "--table", "1"], "expected LEVEL=WEIGHT pairs"),
        (["--size", "10"], "give exactly one of --prior, --from-grading, --table (got 0)"),
        (["--size", "10", "--prior", "5:4:3:2:1", "--table", "1=1"], "(got 2)"),
    ],
)
def test_bad_inputs_write_nothing(bank_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = run_sample(bank_dir, tmp_path / "s", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "s").exists()


def test_empty_bank_and_incomplete_bank(tmp_path: Path) -> None:
    empty = ArtifactDir(tmp_path / "empty").prepare()
    empty.write_shard("part-00000.jsonl", [], BankEntry)
    empty.finalize(Manifest(kind="DifficultyBank", name="empty"))
    result = run_sample(tmp_path / "empty", tmp_path / "s", "--size", "1", "--prior", "5:4:3:2:1")
    assert result.exit_code == 1 and "the bank is empty" in result.output
    (tmp_path / "half").mkdir()
    result = run_sample(tmp_path / "half", tmp_path / "s", "--size", "1", "--prior", "5:4:3:2:1")
    assert result.exit_code == 1 and "incomplete (no _SUCCESS)" in result.output
    assert not (tmp_path / "s").exists()
