"""SIGKILL a sharded grading run mid-way, rerun it, and get the same artifact as an uninterrupted run.

The kill is real: shard 0 runs in a subprocess with a scripted generator that, on its third chunk,
yields one completion, says so on stdout and blocks; the test then SIGKILLs the process (the chunk in
flight is lost, two chunks are in the shard's log). Shard 1 runs to completion, shard 0 is rerun and
merges. The reference run grades the same spec in this process without interruption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_json
from grading_scripted import ScriptedGenerator, ScriptedScorer, sum_answers

from adacot.api.loader import load_resources
from adacot.artifacts import GradedQuestion, ShardSpec, read_manifest, read_records, verify_artifact
from adacot.pipelines.grading_run import run_grading_run

pytestmark = pytest.mark.integration
TESTS_DIR = Path(__file__).resolve().parents[1]
QUESTIONS = 24
BATCH = 3

WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from grading_scripted import ScriptedGenerator, ScriptedScorer, sum_answers
from adacot.api.loader import load_resources
from adacot.artifacts import ShardSpec
from adacot.pipelines.grading_run import run_grading_run



class Blocking(ScriptedGenerator):
    def __init__(self, block_on_call):
        super().__init__(sum_answers)
        self.block_on_call = block_on_call

    def generate(self, prompts, sampling):
        stream = super().generate(prompts, sampling)
        yield next(stream)  # counts this call
        if self.calls == self.block_on_call:
            print("BLOCKED", flush=True)
            sys.stdin.read()  # never returns: the test kills this process here
        yield from stream


if __name__ == "__main__":  # the verifier's worker processes are spawned: they re-import this file
    spec_path, out_dir, shard, block_on_call = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    generator = Blocking(block_on_call)
    summary = run_grading_run(load_resources(spec_path)[0], out_dir, shard=ShardSpec.parse(shard),
                             generator=lambda: generator, scorer=ScriptedScorer)
    print(json.dumps({{"prompts": len(generator.prompts), "summary": summary}}), flush=True)
"""


def write_spec(tmp_path: Path) -> Path:
    rows = [
        {
            "id": f"q{i:03d}",
            "problem": f"What is {i * 7} + {i * 13 % 50}?",
            "answer": str(i * 7 + i * 13 % 50),
        }
        for i in range(QUESTIONS)
    ]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    resource = {
        "apiVersion": "adacot.dev/v1alpha1", "kind": "GradingRun", "metadata": {"name": "resume"},
        "spec": {
            "questions": {"path": str(questions), "fields": {"id": "id"}},
            "model": {"path": "/models/student"},
            "inference": {"batchSize": BATCH},
            "sampling": {"samplesPerQuestion": 2, "seed": 3},
            "grader": {"prm": {"model": {"path": "/models/prm"}}, "levels": {"mode": "quantiles"}},
            "verification": {"workers": 1},
            "shards": 2,
        },
    }  # fmt: skip
    path = tmp_path / "gradingrun.yaml"
    path.write_text(yaml.safe_dump(resource))
    return path


def run_worker(script: Path, spec: Path, out: Path, shard: str, block_on_call: int = 0) -> dict[str, Any]:
    return run_json([sys.executable, str(script), str(spec), str(out), shard, str(block_on_call)])


def data_hashes(out: Path) -> dict[str, str]:
    return {name: entry.sha256 for name, entry in read_manifest(out).files.items()}


def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_artifact(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    resource = load_resources(spec)[0]
    reference = tmp_path / "reference"
    for index in (0, 1):
        run_grading_run(
            resource,
            reference,
            shard=ShardSpec(index, 2),
            generator=lambda: ScriptedGenerator(sum_answers),
            scorer=ScriptedScorer,
        )

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS_DIR)))
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(spec), str(out), "0/2", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "BLOCKED", proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    log = out / "_work" / "graded" / "log-00000-of-00002.jsonl"
    logged = len(log.read_text().splitlines())
    assert logged == 2 * BATCH and not (out / "_SUCCESS").exists()

    other = run_worker(script, spec, out, "1/2")
    assert other["summary"]["complete"] is False and other["summary"]["waiting_for"] == ["00000-of-00002"]
    resumed = run_worker(script, spec, out, "0/2")
    shard0 = sum(1 for q in range(QUESTIONS) if ShardSpec(0, 2).owns(f"q{q:03d}"))
    assert resumed["prompts"] == shard0 - logged  # only the questions not in the log were generated

    verify_artifact(out)
    assert data_hashes(out) == data_hashes(reference)
    records = list(read_records(out, GradedQuestion))
    assert records == list(read_records(reference, GradedQuestion))
    keys = Counter(r.key for r in records)
    assert len(keys) == QUESTIONS and max(keys.values()) == 1
    assert resumed["summary"] == json.loads((reference / "summary.json").read_text())
    assert not (out / "_work").exists()


def test_complete_run_summary_manifest_and_termination_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination = tmp_path / "termination-log"
    monkeypatch.setenv("ADACOT_TERMINATION_LOG", str(termination))
    resource = load_resources(write_spec(tmp_path))[0]
    out = tmp_path / "out"
    generator = ScriptedGenerator(sum_answers)
    seen: list[int] = []
    summary = run_grading_run(
        resource,
        out,
        generator=lambda: generator,
        scorer=ScriptedScorer,
        progress=lambda report: seen.append(report.done),
    )
    assert seen[0] == 0 and seen[-1] == QUESTIONS and generator.closed
    records = list(read_records(out, GradedQuestion))
    levels = Counter(r.level for r in records)
    assert summary["questions"] == QUESTIONS and summary["unverifiable"] == 0
    assert summary["level_counts"] == {str(k): levels.get(k, 0) for k in range(6)}
    assert summary["accuracy"] == levels[0] / QUESTIONS and 0 < levels[0] < QUESTIONS
    assert sum(summary["distribution"].values()) == pytest.approx(1.0)
    manifest = read_manifest(out)
    assert manifest.total_records == QUESTIONS and manifest.seed == 3
    assert manifest.spec["grader"]["levels"]["mode"] == "quantiles"
    assert manifest.metrics["grading"]["attempts"] == 2 * QUESTIONS
    assert manifest.metrics["usage"]["requests"] == QUESTIONS
    assert json.loads(termination.read_text())["accuracy"] == summary["accuracy"]
    # A complete artifact is not graded again.
    again = ScriptedGenerator(sum_answers)
    assert run_grading_run(resource, out, generator=lambda: again) == summary and again.calls == 0
