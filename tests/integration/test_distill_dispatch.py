"""Continuous dispatch against a real HTTP teacher (tests/fault_server.py): one slow answer never stops
the others, and a SIGKILL mid-run then a resume give exactly the records and usage of an uninterrupted run.

The fault server echoes the prompt, so question i ("... </think> So \\boxed{2i}") is answered right for
even i and wrong for odd i (its reference is 2i + 1): odd questions need a second round.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from distill_helpers import entry, job, write_bank
from fault_server import FaultServer, wait_for_lines

from adacot.api.distillation_job import DistillationJob
from adacot.api.generation import PromptSpec
from adacot.artifacts import read_manifest, read_records, verify_artifact
from adacot.artifacts.rows import BankEntry, DistilledQuestion
from adacot.pipelines.distillation_job import run_distillation_job
from adacot.stages.prompts import user_text

pytestmark = pytest.mark.integration
QUESTIONS = 20
CONCURRENCY = 4


def echo_bank() -> list[BankEntry]:
    return [
        entry(f"e{i:02d}", f"Q{i}: add {i} and {i}. </think> So \\boxed{{{2 * i}}}", str(2 * i + i % 2))
        for i in range(QUESTIONS)
    ]


def prompt_of(index: int) -> str:
    return user_text(echo_bank()[index].question, PromptSpec(instruction=""))


def resource(url: str) -> DistillationJob:
    endpoint = {"url": url, "model": "t", "concurrency": CONCURRENCY, "timeoutSeconds": 120}
    teacher = {"endpoint": endpoint, "maxAttempts": 2, "prompt": {"instruction": ""}}
    made: DistillationJob = job(size=QUESTIONS, distribution={"table": {"1": 1}}, teacher=teacher)
    return made


def records(out: Path) -> list[DistilledQuestion]:
    return list(read_records(out / "records", DistilledQuestion))


def timeless(record: DistilledQuestion) -> str:
    """The record without its latencies, the one thing two runs may not share."""
    attempts = [a.model_copy(update={"latency_s": None}) for a in record.attempts]
    kept = [t.model_copy(update={"latency_s": None}) for t in record.kept]
    return record.model_copy(update={"attempts": attempts, "kept": kept}).model_dump_json()


def test_one_slow_answer_does_not_hold_the_others(tmp_path: Path) -> None:
    """Question 0's request is held until every other request (both rounds of the odd questions) has
    been answered. Batch dispatch would wait for question 0 and only time out; continuous dispatch
    sends everything else meanwhile, never more than `concurrency` at once."""
    others = (QUESTIONS - 1) + QUESTIONS // 2  # round 0 of the rest, round 1 of the odd ones
    bank = write_bank(tmp_path / "bank", echo_bank())
    with FaultServer(script={prompt_of(0): ["hold"]}, stall_s=60.0, release_after=others) as server:
        run_distillation_job(resource(server.url), tmp_path / "out", bank_dir=bank)
    assert server.held_released_by == ["release"]  # released by the others' answers, not the timeout
    assert 2 <= server.max_in_flight <= CONCURRENCY  # the held one and the flow beside it
    held = next(h for h in server.hits if h.behaviour == "hold")
    rest = [h for h in server.hits if h is not held]
    assert len(rest) == others and all(h.replied is not None for h in rest)
    assert max(h.replied for h in rest if h.replied is not None) <= (held.replied or 0)
    second_rounds = [h for h in rest if h.prompt in {prompt_of(i) for i in range(1, QUESTIONS, 2)}]
    assert len(second_rounds) == 2 * (QUESTIONS // 2)  # next rounds went out while question 0 was held
    verify_artifact(tmp_path / "out")
    assert [r.question_id for r in records(tmp_path / "out")] == [f"e{i:02d}" for i in range(QUESTIONS)]


WORKER = """
import sys
from adacot.api.loader import load_resources
from adacot.pipelines.distillation_job import run_distillation_job

if __name__ == "__main__":  # the verifier's worker processes are spawned: they re-import this file
    run_distillation_job(load_resources(sys.argv[1])[0], sys.argv[2], bank_dir=sys.argv[3])
"""


def test_sigkill_mid_run_then_resume_gives_exact_records_and_usage(tmp_path: Path) -> None:
    """Question 1's first request is held; every other question is answered and logged one by one; the
    shard is SIGKILLed with that request in flight. The resumed run asks only question 1 again, and the
    records, their per-question usage and the manifest's usage equal an uninterrupted run's."""
    bank = write_bank(tmp_path / "bank", echo_bank())
    with FaultServer() as clean:
        reference = tmp_path / "reference"
        run_distillation_job(resource(clean.url), reference, bank_dir=bank)

    with FaultServer(script={prompt_of(1): ["hold"]}, stall_s=120.0) as server:
        spec = resource(server.url)
        spec_path = tmp_path / "dj.yaml"
        spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(spec_path), str(out), str(bank)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        log = out / "records" / "_work" / "log-00000-of-00001.jsonl"
        wait_for_lines(log, QUESTIONS - 1, proc)  # all but the held one, each logged as it finished
        held = [h for h in server.hits if h.behaviour == "hold"]
        assert len(held) == 1 and held[0].replied is None  # still in flight at the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not (out / "_SUCCESS").exists()
        before = len(server.hits)
        run_distillation_job(spec, out, bank_dir=bank)
        asked_again = server.hits[before:]

    assert {h.prompt for h in asked_again} == {prompt_of(1)}  # only the question in flight, both rounds
    verify_artifact(out)
    assert [timeless(r) for r in records(out)] == [timeless(r) for r in records(reference)]
    usage = read_manifest(out / "records").metrics["usage"]
    assert usage == read_manifest(reference / "records").metrics["usage"]
    odd = QUESTIONS // 2
    assert usage["requests"] == QUESTIONS + odd  # the killed request is not counted; its redo is
    assert usage["completion_tokens"] == sum(
        a.completion_tokens or 0 for r in records(out) for a in r.attempts
    )
    assert all(r.usage is not None and r.usage["requests"] == r.rounds for r in records(out))
