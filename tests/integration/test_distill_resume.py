"""SIGKILL a distillation shard mid-run, resume it, and get the same final dataset as an uninterrupted run.

The kill is real: shard 0 runs in a subprocess whose scripted teacher, on its third generate call, yields
one completion, says so and blocks; the test SIGKILLs it (the chunk in flight is lost; the two chunks
before it are in the shard's log). Shard 1 runs, shard 0 is rerun and merges. The reference run distils
the same spec in this process without interruption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_json
from distill_helpers import ScriptedTeacher, job, sum_bank, sum_rule, write_bank

from adacot.artifacts import SftExample, ShardSpec, read_manifest, read_records, verify_artifact
from adacot.artifacts.rows import DistilledQuestion
from adacot.artifacts.store import is_complete
from adacot.pipelines import distillation_job
from adacot.pipelines.distillation_job import run_distillation_job

pytestmark = pytest.mark.integration
TESTS_DIR = Path(__file__).resolve().parents[1]
QUESTIONS = 20
SPEC: dict[str, Any] = {"size": QUESTIONS, "shards": 2, "exports": ["sharegpt", "alpaca"],
        "teacher": {"endpoint": {"url": "http://127.0.0.1:9/v1", "model": "t", "concurrency": 1},
                    "maxAttempts": 1}}  # fmt: skip

WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from distill_helpers import ScriptedTeacher, sum_rule
from adacot.api.loader import load_resources
from adacot.artifacts import ShardSpec
from adacot.pipelines.distillation_job import run_distillation_job


class Blocking(ScriptedTeacher):
    def __init__(self, block_on_call):
        super().__init__(sum_rule)
        self.calls, self.block_on_call = 0, block_on_call

    def generate(self, prompts, sampling):
        self.calls += 1
        stream = super().generate(prompts, sampling)
        yield next(stream)
        if self.calls == self.block_on_call:
            print("BLOCKED", flush=True)
            sys.stdin.read()  # never returns: the test kills this process here
        yield from stream


if __name__ == "__main__":  # the verifier's worker processes are spawned: they re-import this file
    spec, out, bank, shard, block = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    teacher = Blocking(block)
    summary = run_distillation_job(load_resources(spec)[0], out, bank_dir=bank, shard=ShardSpec.parse(shard),
                                  generator=lambda: teacher)
    print(json.dumps({{"prompts": len(teacher.prompts), "summary": summary}}), flush=True)
"""


def run_worker(script: Path, args: list[str]) -> dict[str, Any]:
    return run_json([sys.executable, str(script), *args])


def dataset(out: Path) -> list[str]:
    return [e.model_dump_json() for e in read_records(out, SftExample)]


def test_sigkill_then_resume_gives_the_same_dataset(tmp_path: Path) -> None:
    resource = job(**SPEC)
    bank = write_bank(tmp_path / "bank", sum_bank(QUESTIONS))
    spec_path = tmp_path / "dj.yaml"
    spec_path.write_text(yaml.safe_dump(resource.model_dump(mode="json", by_alias=True, exclude_none=True)))

    reference = tmp_path / "reference"
    for index in (0, 1):
        run_distillation_job(resource, reference, bank_dir=bank, shard=ShardSpec(index, 2),
                            generator=lambda: ScriptedTeacher(sum_rule))  # fmt: skip

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS_DIR)))
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(spec_path), str(out), str(bank), "0/2", "3"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "BLOCKED", proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    log = out / "records" / "_work" / "log-00000-of-00002.jsonl"
    logged = len(log.read_text().splitlines())
    assert logged == 2 * 2 and not (out / "_SUCCESS").exists()  # two chunks of 2 x concurrency

    other = run_worker(script, [str(spec_path), str(out), str(bank), "1/2", "0"])
    assert other["summary"]["complete"] is False and other["summary"]["waiting_for"] == ["00000-of-00002"]
    resumed = run_worker(script, [str(spec_path), str(out), str(bank), "0/2", "0"])
    shard0 = sum(1 for e in sum_bank(QUESTIONS) if ShardSpec(0, 2).owns(e.question.id))
    assert resumed["prompts"] == shard0 - logged  # only the questions not in the log were asked again

    verify_artifact(out)
    kept = QUESTIONS // 2  # one attempt each: the scripted teacher is right first time for even A only
    assert dataset(out) == dataset(reference) and len(dataset(out)) == kept
    records = [r.question_id for r in read_records(out / "records", DistilledQuestion)]
    assert records == sorted(e.question.id for e in sum_bank(QUESTIONS))  # none lost, none twice
    for name in ("sharegpt.jsonl", "alpaca.jsonl", "dataset_info.json"):
        assert (out / "exports" / name).read_bytes() == (reference / "exports" / name).read_bytes()
    summary = resumed["summary"]
    assert summary == json.loads((reference / "summary.json").read_text()) | {"usage": summary["usage"]}
    assert summary["kept"] == kept and summary["acceptance_rate"] == 0.5
    assert summary["outcomes"] == {"kept": kept, "wrong:not_equivalent": QUESTIONS - kept}
    assert read_manifest(out).metrics["kept"] == kept


def test_a_merge_killed_after_records_resumes_without_the_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """records/ is finalized before the dataset is written; the shard logs stay until the job is
    complete, so a merge that dies after records/ resumes from them and asks the teacher nothing."""
    resource = job(**SPEC)
    bank = write_bank(tmp_path / "bank", sum_bank(QUESTIONS))
    reference = tmp_path / "reference"
    run_distillation_job(resource, reference, bank_dir=bank, generator=lambda: ScriptedTeacher(sum_rule))

    def disk_full(*args: object) -> None:
        raise OSError("no space left on device")

    out = tmp_path / "out"
    monkeypatch.setattr(distillation_job, "write_exports", disk_full)
    with pytest.raises(OSError, match="no space"):
        run_distillation_job(resource, out, bank_dir=bank, generator=lambda: ScriptedTeacher(sum_rule))
    assert is_complete(out / "records") and not is_complete(out)
    monkeypatch.undo()

    def no_teacher() -> ScriptedTeacher:
        raise AssertionError("the teacher was asked again")

    summary = run_distillation_job(resource, out, bank_dir=bank, generator=no_teacher)
    verify_artifact(out)
    assert dataset(out) == dataset(reference)
    for name in ("sharegpt.jsonl", "alpaca.jsonl", "dataset_info.json"):
        assert (out / "exports" / name).read_bytes() == (reference / "exports" / name).read_bytes()
    assert summary == json.loads((reference / "summary.json").read_text()) | {"usage": summary["usage"]}
    assert not (out / "records" / "_work").exists() and not (out / "_work").exists()
