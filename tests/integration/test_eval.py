"""`adacot eval` on the session's tiny model with the vLLM CPU engine, k = 2: the printed accuracy and
pass@k equal a hand computation from the written grading records.

The tiny model writes nonsense, so on MATH-500 it solves nothing. To get figures other than zero, a
second benchmark reuses the same questions with references taken from the model's own first sample
(what the verifier extracts from it): grading is seeded per question, so the second evaluation draws
the same samples and the first one of each such question is now right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import KV_CACHE_BYTES
from shared_data import MATH500, needs_shared_data

from adacot.artifacts import GradedQuestion, read_records
from adacot.cli.main import main
from adacot.verify.math import verify_math

pytestmark = [pytest.mark.integration, needs_shared_data]


def evaluate(tiny_lm: Path, dataset: str, out: Path) -> dict[str, Any]:
    args = ["eval", "--model", str(tiny_lm), "--dataset", dataset, "--k", "2", "--out", str(out),
            "--max-tokens", "64", "--temperature", "1.0", "--top-p", "1.0", "--seed", "7",
            "--max-model-len", "1024",
            "--workers", "1", "--batch-size", "8", "--no-progress",
            f"--vllm-arg=--kv-cache-memory-bytes={KV_CACHE_BYTES}"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # vLLM logs to stdout too; the summary is the JSON document at the end.
    summary: dict[str, Any] = json.loads(result.stdout[result.stdout.index('{\n  "models"') :])
    return summary


def by_hand(records: list[GradedQuestion]) -> tuple[float, float, float]:
    """accuracy, pass@1 and pass@2 of n = 2 samples per question: c/2, c/2 and 1 if c >= 1."""
    correct = [sum(1 for a in r.attempts if a.verdict and a.verdict.correct) for r in records]
    assert all(len(r.attempts) == 2 for r in records)
    accuracy = sum(c / 2 for c in correct) / len(records)
    return accuracy, accuracy, sum(1 for c in correct if c >= 1) / len(records)


def test_accuracy_and_pass_at_k_match_the_records(tiny_lm: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()[:6]]
    rows = [{"id": f"m{i}", **r} for i, r in enumerate(rows)]
    original = tmp_path / "math500.jsonl"
    original.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = evaluate(tiny_lm, f"math500={original}", tmp_path / "first")
    records = sorted(read_records(tmp_path / "first" / "grading" / "model" / "math500", GradedQuestion),
                     key=lambda r: r.key)  # fmt: skip
    scores = first["models"]["model"]["benchmarks"]["math500"]
    accuracy, pass1, pass2 = by_hand(records)
    assert scores["questions"] == 6 and scores["samples"] == 2
    assert scores["accuracy"] == pytest.approx(accuracy)
    assert scores["pass_at_k"] == pytest.approx({"1": pass1, "2": pass2})

    # References from each question's first sample: the same seeded samples come back, now (partly) right.
    # Without an id field the question ids are hashes of the text: match records to rows by problem.
    first_samples = {r.question.problem: verify_math(r.attempts[0].text, "0").extracted for r in records}
    own = [{**r, "answer": first_samples[r["problem"]] or r["answer"]} for r in rows]
    assert any(first_samples.values()), "no sample of the tiny model ends with anything answer-like"
    # Same benchmark name and file name: question ids (hashes of source and text) and so seeds stay.
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in own))
    second = evaluate(tiny_lm, f"math500={tmp_path / 'own' / 'math500.jsonl'}", tmp_path / "second")
    again = sorted(read_records(tmp_path / "second" / "grading" / "model" / "math500", GradedQuestion),
                   key=lambda r: r.key)  # fmt: skip
    assert [a.text for r in again for a in r.attempts] == [a.text for r in records for a in r.attempts]
    scores = second["models"]["model"]["benchmarks"]["math500"]
    accuracy, pass1, pass2 = by_hand(again)
    assert scores["accuracy"] == pytest.approx(accuracy) and scores["accuracy"] > 0
    assert scores["pass_at_k"] == pytest.approx({"1": pass1, "2": pass2})
    assert (tmp_path / "second" / "EVAL.md").read_text().count("| math500 |") == 1
