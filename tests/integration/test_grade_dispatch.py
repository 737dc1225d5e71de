"""Grading through an endpoint with continuous dispatch, against a real HTTP server
(tests/fault_server.py): one slow answer never stops the others, and a SIGKILL mid-run then a resume give
exactly the records and usage of an uninterrupted run.

The fault server echoes the prompt, so question i ("... \\boxed{2i}") is solved for even i and not for
odd i (its reference is 2i + 1); the pass-rate grader levels the unsolved ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fault_server import FaultServer, wait_for_lines

from adacot.api.grading_run import GradingRun
from adacot.artifacts import GradedQuestion, read_manifest, read_records, verify_artifact
from adacot.artifacts.rows import Question
from adacot.pipelines.grading_run import run_grading_run
from adacot.stages.prompts import build_prompt, derive_seed

pytestmark = pytest.mark.integration
QUESTIONS = 16
CONCURRENCY = 4
K = 2
SEED = 5
LOG = Path("_work") / "graded" / "log-00000-of-00001.jsonl"


def write_questions(path: Path) -> Path:
    rows = [{"id": f"g{i:02d}", "problem": f"G{i}: so \\boxed{{{2 * i}}}", "answer": str(2 * i + i % 2)}
            for i in range(QUESTIONS)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def resource(url: str, questions: Path) -> GradingRun:
    return GradingRun.model_validate({
        "apiVersion": "adacot.dev/v1alpha1", "kind": "GradingRun", "metadata": {"name": "dispatch"},
        "spec": {
            "questions": {"path": str(questions), "fields": {"id": "id"}},
            "model": {"path": "/models/student"},
            "inference": {"engine": "http", "batchSize": 8, "endpoint": {
                "url": url, "model": "t", "concurrency": CONCURRENCY, "timeoutSeconds": 120}},
            "prompt": {"instruction": ""},
            "sampling": {"samplesPerQuestion": K, "seed": SEED},
            "grader": {"method": "passRate"},
            "verification": {"workers": 1},
        },
    })  # fmt: skip


def prompt_of(run: GradingRun, index: int) -> str:
    question = Question(id=f"g{index:02d}", task="math", problem=f"G{index}: so \\boxed{{{2 * index}}}",
                        answer=str(2 * index + index % 2), source="q")  # fmt: skip
    prompt = build_prompt(question, run.spec.prompt, derive_seed(SEED, question.id))
    return prompt.messages[-1][1] if prompt.messages else prompt.text or ""


def records(out: Path) -> list[GradedQuestion]:
    return list(read_records(out, GradedQuestion))


def timeless(record: GradedQuestion) -> str:
    """The record without its latencies, the one thing two runs may not share."""
    attempts = [a.model_copy(update={"latency_s": None}) for a in record.attempts]
    return record.model_copy(update={"attempts": attempts}).model_dump_json()


def test_one_slow_answer_does_not_hold_the_others(tmp_path: Path) -> None:
    """Question 0's request is held until every other question is answered: with batches of 8 the
    batch holding question 0 would wait for it and only time out."""
    questions = write_questions(tmp_path / "q.jsonl")
    probe = resource("http://127.0.0.1:9/v1", questions)
    script = {prompt_of(probe, 0): ["hold"]}
    with FaultServer(script=script, stall_s=60.0, release_after=QUESTIONS - 1) as server:
        run_grading_run(resource(server.url, questions), tmp_path / "out")
    assert server.held_released_by == ["release"]  # released by the others' answers, not the timeout
    assert 2 <= server.max_in_flight <= CONCURRENCY
    held = next(h for h in server.hits if h.behaviour == "hold")
    rest = [h for h in server.hits if h is not held]
    assert len(rest) == QUESTIONS - 1
    assert max(h.replied or 0 for h in rest) <= (held.replied or 0)
    verify_artifact(tmp_path / "out")
    graded = records(tmp_path / "out")
    assert [r.key for r in graded] == [f"g{i:02d}" for i in range(QUESTIONS)]
    assert [r.solved for r in graded] == [i % 2 == 0 for i in range(QUESTIONS)]


WORKER = """
import sys
from adacot.api.loader import load_resources
from adacot.pipelines.grading_run import run_grading_run

if __name__ == "__main__":  # the verifier's worker processes are spawned: they re-import this file
    run_grading_run(load_resources(sys.argv[1])[0], sys.argv[2])
"""


def test_sigkill_mid_run_then_resume_gives_exact_records_and_usage(tmp_path: Path) -> None:
    """Question 3's request is held; the others are graded and logged one by one; the shard is
    SIGKILLed with it in flight. The resume asks only question 3 again; records and the manifest's
    usage equal an uninterrupted run's."""
    questions = write_questions(tmp_path / "q.jsonl")
    with FaultServer() as clean:
        reference = tmp_path / "reference"
        run_grading_run(resource(clean.url, questions), reference)

    probe = resource("http://127.0.0.1:9/v1", questions)
    with FaultServer(script={prompt_of(probe, 3): ["hold"]}, stall_s=120.0) as server:
        run = resource(server.url, questions)
        spec_path = tmp_path / "gr.yaml"
        spec_path.write_text(yaml.safe_dump(run.model_dump(mode="json", by_alias=True, exclude_none=True)))
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(spec_path), str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_lines(out / LOG, QUESTIONS - 1, proc)  # all but the held one
        held = [h for h in server.hits if h.behaviour == "hold"]
        assert len(held) == 1 and held[0].replied is None  # still in flight at the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        before = len(server.hits)
        run_grading_run(run, out)
        asked_again = server.hits[before:]

    assert {h.prompt for h in asked_again} == {prompt_of(probe, 3)} and len(asked_again) == 1
    verify_artifact(out)
    assert [timeless(r) for r in records(out)] == [timeless(r) for r in records(reference)]
    usage = read_manifest(out).metrics["usage"]
    assert usage == read_manifest(reference).metrics["usage"]
    assert usage["requests"] == QUESTIONS  # n = K in one request each; the killed request is not counted
    assert usage["completion_tokens"] == sum(
        a.completion_tokens or 0 for r in records(out) for a in r.attempts
    )
    assert all(r.usage is not None and r.usage["requests"] == 1 for r in records(out))
