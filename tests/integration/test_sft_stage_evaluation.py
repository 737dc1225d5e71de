"""SFT evaluation in the pod path: `adacot stage sftjob` (the command the operator's Job runs) trains, then
evaluates the trained and the base model on the spec's benchmark, before the artifact is finalised.

Checks the `evaluation/` artifact (summary.json per model, EVAL.md, one complete GradingRun per model and
benchmark), the stage's summary.json, and the termination message the operator turns into the SFTJob's
status fields (`status.evaluation` rows of before/after scores, validated by the operator's own code).
Before this, only `adacot run` evaluated: the cluster and the laptop disagreed on what an SFTJob does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from adacot_operator.summary import summary_fields
from sft_helpers import FAST, math500_rows, sft_examples, sft_job, write_dataset
from shared_data import needs_shared_data

from adacot.api.sft_job import SFTJob
from adacot.artifacts.rows import GradedQuestion
from adacot.artifacts.store import is_complete, read_records, verify_artifact
from adacot.artifacts.summary import read_summary

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_shared_data]

TRAINING = {**FAST, "epochs": 1, "saveSteps": 100}
QUESTIONS = 4


def evaluating_job(tiny_lm: Path, tmp_path: Path) -> SFTJob:
    dataset = write_dataset(tmp_path / "train.jsonl", sft_examples(8))
    bench = tmp_path / "bench.jsonl"
    rows = math500_rows(QUESTIONS)
    bench.write_text("".join(json.dumps({"id": f"q{i}", **r}) + "\n" for i, r in enumerate(rows)))
    job = sft_job(tiny_lm, dataset, training=TRAINING, name="sft-eval")
    evaluation = {
        "datasets": [{"name": "math500-head", "path": str(bench), "fields": {"id": "id"}}],
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 16, "temperature": 1.0, "seed": 1},
        "inference": {"engine": "transformers", "batchSize": 8},
        "verification": {"workers": 1},
        "compareBase": True,
    }
    data = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["spec"]["evaluation"] = evaluation
    return SFTJob.model_validate(data)


def test_stage_sftjob_evaluates_and_reports_status_fields(tiny_lm: Path, tmp_path: Path) -> None:
    job = evaluating_job(tiny_lm, tmp_path)
    spec, out, message = tmp_path / "sft.yaml", tmp_path / "out", tmp_path / "termination-log"
    spec.write_text(yaml.safe_dump(job.model_dump(mode="json", by_alias=True, exclude_none=True)))
    adacot = str(Path(sys.executable).with_name("adacot"))
    env = {**os.environ, "ADACOT_TERMINATION_LOG": str(message)}
    command = [adacot, "stage", "sftjob", "--spec", str(spec), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]

    # The artifact is complete only with its evaluation, which holds a GradingRun per model.
    assert is_complete(out)
    verify_artifact(out)
    evaluation = json.loads((out / "evaluation" / "summary.json").read_text())
    assert set(evaluation["models"]) == {"model", "base"}
    assert evaluation["models"]["model"]["model"] == str(out / "model")
    assert evaluation["models"]["base"]["model"] == str(tiny_lm)
    assert (out / "evaluation" / "EVAL.md").read_text().startswith("# Evaluation")
    for label in ("model", "base"):
        graded = list(read_records(out / "evaluation" / "grading" / label / "math500-head", GradedQuestion))
        assert sorted(r.key for r in graded) == [f"q{i}" for i in range(QUESTIONS)]
        scores = evaluation["models"][label]["benchmarks"]["math500-head"]
        correct = [sum(bool(a.verdict and a.verdict.correct) for a in r.attempts) / 2 for r in graded]
        assert scores["accuracy"] == pytest.approx(sum(correct) / QUESTIONS)  # mean over questions
    summary = read_summary(out)
    assert summary["evaluation"] == evaluation

    # What the operator reads from the pod: evaluation rows that validate as SFTJob status fields.
    fields = summary_fields("SFTJob", json.loads(message.read_text()))
    after = evaluation["models"]["model"]["benchmarks"]["math500-head"]["accuracy"]
    before = evaluation["models"]["base"]["benchmarks"]["math500-head"]["accuracy"]
    accuracy = [row for row in fields["evaluation"] if row["metric"] == "accuracy"]
    assert accuracy == [{"name": "math500-head", "metric": "accuracy", "before": before, "after": after}]
    assert {row["metric"] for row in fields["evaluation"]} == {"accuracy", "pass@2"}
    assert fields["metrics"].loss == summary["loss"]

    # A rerun of a complete stage evaluates nothing again.
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-4000:]
    assert read_summary(out) == summary
