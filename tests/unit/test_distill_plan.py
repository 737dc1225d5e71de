"""The DistillationJob's plan (its sample) on real bank artifacts and a scripted teacher: excluded levels
never fill the sample and a bank short outside them fails before any teacher call (the stage and
`adacot distill`); decontamination runs on the bank before drawing, so the job still gets exactly N
clean questions (or fails naming the clean count); the saved sample is reused on rerun; the summary
carries the target beside the achieved shares."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import free_port
from distill_helpers import ScriptedTeacher, job, sum_bank, sum_rule, write_bank

from adacot.artifacts.jsonio import iter_jsonl
from adacot.artifacts.manifest import read_manifest
from adacot.artifacts.rows import BankEntry
from adacot.backends.base import Generator
from adacot.cli.main import main
from adacot.pipelines.distillation_job import load_or_draw, run_distillation_job

#: Levels cycle 0, 0, 1: a bank of 12 holds 8 solved (level 0) and 4 unsolved (level 1) questions.
EASY_HEAVY = (0, 0, 1)
EXCLUDE_EASY = {"table": {"0": 1, "1": 1}, "excludeEasy": True}
CONTAMINATED = ("q001", "q004", "q007", "q010", "q013")


def never() -> Generator:
    raise AssertionError("the teacher must not be built before the sample is known to be drawable")


def benchmark_file(tmp_path: Path, bank: list[BankEntry], ids: tuple[str, ...]) -> Path:
    """A benchmark JSONL whose problems are those of the bank questions `ids`, word for word."""
    path = tmp_path / "bench.jsonl"
    rows = [{"problem": e.question.problem} for e in bank if e.question.id in ids]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def decontaminated(bench: Path) -> dict[str, object]:
    return {"benchmarks": [{"path": str(bench)}]}


# ------------------------------------------------------------------------------------ excluded levels


def test_exclude_easy_short_bank_fails_before_the_teacher(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank", sum_bank(12, levels=EASY_HEAVY))
    out = tmp_path / "out"
    message = (
        "only 4 questions are available outside the excluded levels 0, 2, 3, 4, 5 (level 1: 4), N=6 asked"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        run_distillation_job(job(distribution=EXCLUDE_EASY, size=6), out, bank_dir=bank, generator=never)
    assert not (out / "sample.json").exists()  # nothing planned, so a fixed spec starts afresh


def test_distill_cli_exclude_easy_fails_before_probing_the_teacher(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank", sum_bank(12, levels=EASY_HEAVY))
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: reaching it would be another error
    result = CliRunner().invoke(
        main, ["distill", "--bank", str(bank), "--teacher-url", url, "--size", "6", "--table", "0=1,1=1",
               "--exclude-easy", "--out", str(tmp_path / "cli"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "only 4 questions are available outside the excluded levels 0, 2" in result.output
    assert "cannot be reached" not in result.output and "Traceback" not in result.output


def test_exclude_easy_sample_and_summary_show_target_beside_achieved(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank", sum_bank(30, levels=EASY_HEAVY))  # 20 at level 0, 10 at level 1
    out = tmp_path / "out"
    summary = run_distillation_job(
        job(distribution=EXCLUDE_EASY, size=8),
        out,
        bank_dir=bank,
        generator=lambda: ScriptedTeacher(sum_rule),
    )
    assert {e.level for e in iter_jsonl(out / "sample.jsonl", BankEntry)} == {1}
    assert summary["target_distribution"]["0"] == summary["sampled_distribution"]["0"] == 0.0
    assert summary["target_distribution"]["1"] == summary["sampled_distribution"]["1"] == 1.0
    assert summary["questions"] == summary["sampled"] == 8
    metrics = read_manifest(out).metrics
    assert metrics["target_distribution"] == summary["target_distribution"]
    assert metrics["sampled_distribution"] == summary["sampled_distribution"]


# ------------------------------------------------------------------------------------ decontamination


def test_decontamination_before_drawing_keeps_exactly_n(tmp_path: Path) -> None:
    entries = sum_bank(20)
    bank = write_bank(tmp_path / "bank", entries)
    spec = job(size=10, decontamination=decontaminated(benchmark_file(tmp_path, entries, CONTAMINATED)))
    out = tmp_path / "out"
    summary = run_distillation_job(spec, out, bank_dir=bank, generator=lambda: ScriptedTeacher(sum_rule))
    drawn = [e.question.id for e in iter_jsonl(out / "sample.jsonl", BankEntry)]
    assert len(drawn) == 10 and not set(drawn) & set(CONTAMINATED)
    removed = [json.loads(line) for line in (out / "removed" / "contaminated.jsonl").read_text().splitlines()]
    assert sorted(r["question_id"] for r in removed) == list(CONTAMINATED)
    assert summary["questions"] == summary["sampled"] == 10 and summary["contaminated"] == 5
    report = json.loads((out / "sample.json").read_text())
    assert sum(level["taken"] for level in report["sampler"]["levels"].values()) == 10
    # A rerun reuses the saved plan: the same questions, even when the benchmark file is gone.
    (tmp_path / "bench.jsonl").unlink()
    assert [e.question.id for e in load_or_draw(spec.spec, out, bank, None, None)] == drawn


def test_a_clean_bank_smaller_than_n_fails_naming_the_removed(tmp_path: Path) -> None:
    entries = sum_bank(12)
    bank = write_bank(tmp_path / "bank", entries)
    spec = job(size=9, decontamination=decontaminated(benchmark_file(tmp_path, entries, CONTAMINATED)))
    message = r"N=9 is larger than the bank after decontamination \(8 clean of 12 questions; 4 overlap"
    with pytest.raises(ValueError, match=message):
        run_distillation_job(spec, tmp_path / "out", bank_dir=bank, generator=never)
    assert len((tmp_path / "out" / "removed" / "contaminated.jsonl").read_text().splitlines()) == 4


def test_decontamination_counts_in_the_excluded_levels_message(tmp_path: Path) -> None:
    entries = sum_bank(12, levels=EASY_HEAVY)  # level 1: q002, q005, q008, q011
    bank = write_bank(tmp_path / "bank", entries)
    bench = benchmark_file(tmp_path, entries, ("q002", "q005"))
    spec = job(distribution=EXCLUDE_EASY, size=3, decontamination=decontaminated(bench))
    with pytest.raises(ValueError, match=r"level 1: 2\), N=3 asked.*after decontamination removed 2"):
        run_distillation_job(spec, tmp_path / "out", bank_dir=bank, generator=never)
