"""A real vLLM OpenAI-compatible server as the teacher, end to end to the written dataset.

The session's tiny model writes nonsense, so most answers are wrong: the test checks the mechanics
(attempts and rounds recorded, every sample's outcome, usage totals) and that whatever is kept really
verifies. To show the kept path for real, one bank question gets a reference built from the model's own
greedy output: the test first asks the server, picks a stop string after a digit in that output, and
takes the verifier's reading of the text before it as the reference (the verifier falls back to the last
number). The in-pod server path (teacher.server) starts a second vLLM server through the stage.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import KV_CACHE_BYTES, VllmServer, free_port
from distill_helpers import entry, job, write_bank
from shared_data import MATH500, needs_shared_data

from adacot.api.distillation_job import TeacherServer
from adacot.api.generation import Endpoint, PromptSpec, SamplingSpec
from adacot.artifacts import SftExample, read_records, verify_artifact
from adacot.artifacts.rows import BankEntry, DistilledQuestion
from adacot.backends.openai_http import OpenAIGenerator
from adacot.backends.teacher_server import TeacherServerError, running_teacher, stop, wait_until_ready
from adacot.pipelines.distillation_job import run_distillation_job
from adacot.stages.distill import derive_seed, teacher_prompt
from adacot.stages.prompts import user_text
from adacot.verify.math import MathVerifier, verify_math

pytestmark = [pytest.mark.integration, needs_shared_data]
MAX_TOKENS = 48
# Seeded sampling at temperature 1: reproducible per request, and varied enough to write digits.
SAMPLING = SamplingSpec(temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS, seed=5)
OUTCOMES = {"kept", "truncated", "wrong:not_equivalent", "wrong:no_answer", "empty_answer"}


def math500_bank(count: int) -> list[BankEntry]:
    with MATH500.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(count), strict=False)]
    return [entry(f"m{i:02d}", r["problem"], r["answer"], level=1 + i % 3) for i, r in enumerate(rows)]


def first_output(server: VllmServer, question: BankEntry) -> str:
    """What the server writes for the question's first-round request (same prompt, seed and sampling as
    the stage will send, without the stop string)."""
    endpoint = Endpoint(url=server.url, model=server.model, concurrency=1, timeout_seconds=120)
    seed = derive_seed(SAMPLING.seed, question.question.id, 0)
    prompt = teacher_prompt(user_text(question.question, PromptSpec()), PromptSpec(), seed=seed)
    with OpenAIGenerator(endpoint) as generator:
        (completion,) = generator.generate([prompt], SAMPLING)
    return completion.samples[0].text


def stop_after_a_digit(text: str) -> tuple[str, str] | None:
    """(stop string, text the server will return with it): the stop string's first occurrence comes
    right after a digit, so the returned text ends with a number."""
    for p in range(1, len(text) - 2):
        stop = text[p : p + 2]
        if text[p - 1].isdigit() and text.find(stop) == p and stop.strip():
            return stop, text[:p]
    return None


def test_vllm_teacher_end_to_end(vllm_server: VllmServer, tmp_path: Path) -> None:
    bank = math500_bank(12)
    outputs = [first_output(vllm_server, e) for e in bank]
    found = next(((i, s) for i, t in enumerate(outputs) if (s := stop_after_a_digit(t))), None)
    assert found is not None, f"no output with a digit among 12 MATH-500 questions: {outputs}"
    index, (stop, expected_text) = found
    reference = verify_math(expected_text, "0").extracted
    assert reference is not None
    bank[index] = entry(bank[index].question.id, bank[index].question.problem, reference, bank[index].level)
    chosen = [bank[index], *[e for i, e in enumerate(bank) if i != index][:5]]
    bank_dir = write_bank(tmp_path / "bank", chosen)

    endpoint = {"url": vllm_server.url, "model": vllm_server.model, "concurrency": 1, "timeoutSeconds": 120}
    sampling = {**SAMPLING.model_dump(by_alias=True), "stop": [stop]}
    teacher = {"endpoint": endpoint, "sampling": sampling, "maxAttempts": 2}
    resource = job(size=6, teacher=teacher, filter={"requireReasoning": False}, exports=["sharegpt"])
    summary = run_distillation_job(resource, tmp_path / "out", bank_dir=bank_dir)
    verify_artifact(tmp_path / "out")

    records = {r.question_id: r for r in read_records(tmp_path / "out" / "records", DistilledQuestion)}
    assert sorted(records) == sorted(e.question.id for e in chosen)
    special = records[bank[index].question.id]
    assert special.outcomes == ["kept"] and special.rounds == 1
    assert special.kept[0].answer == expected_text.strip()
    assert special.kept[0].text == f"<think>\n\n</think>\n\n{expected_text.strip()}"
    for record in records.values():
        assert set(record.outcomes) <= OUTCOMES, record.outcomes
        assert record.rounds == (1 if record.accepted else 2) == len(record.attempts)
        assert all(
            a.completion_tokens and a.prompt_tokens and a.latency_s is not None for a in record.attempts
        )
    with MathVerifier(workers=1) as verifier:
        answers = {e.question.id: e.question.answer or "" for e in chosen}
        for trace in (t for r in records.values() for t in r.kept):
            assert verifier.verify(trace.answer, answers[trace.question_id]).correct is True

    examples = list(read_records(tmp_path / "out", SftExample))
    kept = [t for r in records.values() for t in r.kept]
    assert len(examples) == len(kept) == summary["kept_samples"] >= 1
    assert [m.role for m in examples[0].messages] == ["user", "assistant"]
    attempts = sum(len(r.attempts) for r in records.values())
    assert summary["usage"]["requests"] == attempts and summary["usage"]["retries"] == 0
    assert summary["usage"]["completion_tokens"] == sum(a.completion_tokens or 0 for r in records.values()
                                                         for a in r.attempts)  # fmt: skip
    assert summary["questions"] == 6 and summary["target_distribution"]["1"] == pytest.approx(1 / 3)
    assert (tmp_path / "out" / "distribution.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "exports" / "sharegpt.jsonl").read_text().count("\n") == len(examples)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_in_pod_teacher_server(tiny_lm: Path, tmp_path: Path) -> None:
    port = free_port()
    server = {"model": {"path": str(tiny_lm), "maxModelLen": 1024}, "port": port,
              "startupTimeoutSeconds": 300,
              "vllm": {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]}}  # fmt: skip
    teacher = {"server": server, "sampling": {"maxTokens": 16}, "maxAttempts": 1}
    bank_dir = write_bank(tmp_path / "bank", math500_bank(2))
    resource = job(size=2, teacher=teacher, distribution={"table": {"1": 1, "2": 1}})
    summary = run_distillation_job(resource, tmp_path / "out", bank_dir=bank_dir)
    assert summary["questions"] == 2 and summary["usage"]["requests"] == 2
    assert not port_open(port)  # the server was stopped with the stage
    assert (tmp_path / "out" / "teacher-server.log").stat().st_size > 0

    # Startup failures are clear errors carrying the log tail: here the port is taken (checked before
    # launching); a server that exits during startup is reported the same way (wait_until_ready).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = TeacherServer.model_validate({"model": {"path": str(tiny_lm)}, "port": taken.getsockname()[1]})
        with (
            pytest.raises(TeacherServerError, match="already in use"),
            running_teacher(busy, tmp_path / "b.log"),
        ):
            pass


def test_startup_failures_carry_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{free_port()}/v1"

    def launch(code: str) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen([sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip

    dying = launch("import sys; print('ValueError: no such architecture', flush=True); sys.exit(3)")
    with pytest.raises(TeacherServerError, match="exited with code 3") as failure:
        wait_until_ready(dying, url, 300, log)
    assert "no such architecture" in str(failure.value)

    hanging = launch("import time; print('loading weights', flush=True); time.sleep(300)")
    try:
        with pytest.raises(TeacherServerError, match="not ready after 1s") as failure:
            wait_until_ready(hanging, url, 1, log)
        assert "loading weights" in str(failure.value)
    finally:
        stop(hanging, grace_s=5)
    assert hanging.poll() is not None
