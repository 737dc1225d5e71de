"""`adacot grade`, `adacot bank` and `adacot stage ...` through click's CliRunner with YAML specs; and a
real grading of MATH-500 questions by the session's tiny model on the vLLM CPU engine, scored by a
locally built discriminative PRM (random weights: real mechanics, meaningless levels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import KV_CACHE_BYTES, MATH500

from adacot.artifacts import BankEntry, GradedQuestion, read_manifest, read_records, verify_artifact
from adacot.cli.main import main
from adacot.stages.steps import split_steps

pytestmark = pytest.mark.integration
QUESTIONS = 6


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def math500_rows(tmp_path: Path, extra: list[dict[str, str]] = ()) -> Path:  # type: ignore[assignment]
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()[:QUESTIONS]]
    rows = [{"id": f"m{i}", **r} for i, r in enumerate(rows)] + list(extra)
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_yaml(path: Path, kind: str, name: str, spec: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        )
    )
    return path


def test_grade_and_bank_from_yaml_with_pre_generated_responses(tmp_path: Path) -> None:
    questions = math500_rows(tmp_path)
    answers = [json.loads(line)["answer"] for line in MATH500.read_text().splitlines()[:QUESTIONS]]
    # Question i gets i % 3 right answers out of 2 responses (capped): 0, 1, 2, 0, 1, 2 correct.
    responses = tmp_path / "responses.jsonl"
    with responses.open("w") as handle:
        for i, answer in enumerate(answers):
            for j in range(2):
                text = f"\\boxed{{{answer}}}" if j < i % 3 else "\\boxed{-12345}"
                handle.write(json.dumps({"id": f"m{i}", "response": text}) + "\n")
    spec = write_yaml(tmp_path / "grading.yaml", "GradingRun", "pool", {
        "questions": {"path": str(questions), "fields": {"id": "id"}},
        "model": {"path": "/models/student"},
        "sampling": {"samplesPerQuestion": 2},
        "responses": {"path": str(responses)},
        "grader": {"method": "passRate", "solvedRule": "threshold", "solvedThreshold": 1.0},
        "verification": {"workers": 1},
    })  # fmt: skip
    graded = tmp_path / "graded"
    result = invoke("grade", "--spec", str(spec), "--out", str(graded), "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # threshold 1.0: solved only with both right (m2, m5); one right of two scores 0.5 -> level 3 (bins).
    assert summary["level_counts"] == {"0": 2, "1": 0, "2": 0, "3": 2, "4": 0, "5": 2}
    assert summary["accuracy"] == pytest.approx(2 / 6)
    verify_artifact(graded)

    bank_spec = write_yaml(tmp_path / "bank.yaml", "DifficultyBank", "pool-bank", {
        "sources": [{"gradingRunRef": {"name": "pool"}}],
        "decontamination": {"benchmarks": [{"path": str(MATH500)}]},
    })  # fmt: skip
    out = tmp_path / "bank"
    result = invoke(
        "stage", "difficultybank", "--spec", str(bank_spec), "--run", f"pool={graded}", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    bank = json.loads(result.output)
    # Every question is a MATH-500 question: decontaminating against MATH-500 removes them all.
    assert (bank["model"], bank["contaminated_removed"], bank["questions"]) == ("/models/student", 6, 0)
    assert (out / "histogram.png").is_file() and list(read_records(out, BankEntry)) == []


def test_bad_flags_and_specs_fail_before_any_work(tmp_path: Path) -> None:
    questions = math500_rows(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "grade",
            "--questions",
            str(questions),
            "--model",
            "/m",
            "--method",
            "passRate",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert (
        result.exit_code == 2 and "passRate needs sampling.samplesPerQuestion of at least 2" in result.output
    )
    result = CliRunner().invoke(main, ["grade", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "give --spec FILE, or at least --questions and --model" in result.output
    result = CliRunner().invoke(main, ["bank", "--out", str(tmp_path / "b"), "--source", str(questions)])
    assert result.exit_code == 2 and "model is required when every source is a path" in result.output
    bank = ["bank", "--out", str(tmp_path / "b"), "--model", "/m", "--source", str(questions)]
    result = CliRunner().invoke(main, bank)
    assert result.exit_code == 1 and f"{questions}:1" in result.output  # questions, not GradedQuestion rows
    assert not (tmp_path / "o").exists()


def test_grade_math500_with_real_vllm_and_prm(tiny_lm: Path, tmp_path: Path) -> None:
    from adacot.testing.tiny_prm import build_tiny_discriminative_prm

    prm = build_tiny_discriminative_prm(tmp_path / "prm", seed=1)
    questions = math500_rows(tmp_path, [{"id": "broken", "problem": "What is 2+2?", "answer": "\\text{}"}])
    spec = write_yaml(tmp_path / "grading.yaml", "GradingRun", "tiny", {
        "questions": {"path": str(questions), "fields": {"id": "id"}},
        "model": {"path": str(tiny_lm), "maxModelLen": 1024},
        "inference": {"engine": "vllm", "batchSize": 4,
                      "vllm": {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]}},
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 32, "temperature": 1.0, "seed": 5},
        # Random weights and 32 tokens: most answers are cut off; `scored` still sends them to the PRM.
        "grader": {"prm": {"model": {"path": str(prm)}, "stepSplit": "newlines"}, "truncated": "scored"},
        "verification": {"workers": 1},
    })  # fmt: skip
    out = tmp_path / "graded"
    result = invoke("grade", "--spec", str(spec), "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{\n") :])
    records = {r.key: r for r in read_records(out, GradedQuestion)}
    assert len(records) == QUESTIONS + 1 and summary["questions"] == QUESTIONS + 1
    assert records["broken"].level is None and "gold_unparseable" in (records["broken"].reason or "")
    assert summary["unverifiable"] == 1
    for record in (r for r in records.values() if r.key != "broken"):
        assert len(record.attempts) == 2 and record.level is not None
        assert record.truncated == sum(a.finish_reason == "length" for a in record.attempts)
        for attempt in record.attempts:
            assert attempt.verdict is not None and attempt.finish_reason in ("stop", "length")
            assert 0 < (attempt.completion_tokens or 0) <= 32 and (attempt.prompt_tokens or 0) > 0
            if not record.solved and attempt.verdict.correct is False:
                steps = split_steps(attempt.text, "newlines")
                assert attempt.step_scores is not None and len(attempt.step_scores) == len(steps)
                assert all(0 <= s <= 1 for s in attempt.step_scores)
        if not record.solved:
            assert record.score is not None and 1 <= record.level <= 5
    manifest = read_manifest(out)
    assert manifest.metrics["tokens"]["completion"] == sum(
        a.completion_tokens or 0 for r in records.values() for a in r.attempts
    )
    assert manifest.metrics["grading"]["prm_traces"] >= 1
