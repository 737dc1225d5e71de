"""`adacot run` for real: the four kinds chained on the session's tiny model (vLLM grading, a vLLM server
as teacher, SFT, evaluation before/after), a rerun that touches nothing, a failing stage whose dependants
are skipped, and a run killed mid-stage (SIGKILL) that resumes without redoing or duplicating work.

The tiny model writes nonsense, so to have something to train on one question's reference is built from
the teacher's own seeded output (the trick of test_distill_vllm): the teacher stops right after a digit
and the verifier reads that number, so that question is kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import KV_CACHE_BYTES, VllmServer, process_wait
from fault_server import FaultServer
from shared_data import MATH500, needs_shared_data

from adacot.api.generation import Endpoint, PromptSpec, SamplingSpec
from adacot.artifacts import GradedQuestion, SftExample, read_records, verify_artifact
from adacot.artifacts.rows import Question
from adacot.backends.openai_http import OpenAIGenerator
from adacot.cli.main import main
from adacot.stages.prompts import derive_seed, prompt_for_text, user_text
from adacot.verify.math import verify_math

pytestmark = [pytest.mark.integration, needs_shared_data]
TEACHER_SAMPLING = SamplingSpec(temperature=1.0, top_p=1.0, max_tokens=48, seed=5)


def math500(count: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()[:count]]
    return [{"id": f"m{i:02d}", "problem": r["problem"], "answer": r["answer"]} for i, r in enumerate(rows)]


def question(row: dict[str, Any]) -> Question:
    return Question(id=row["id"], task="math", problem=row["problem"], answer=row["answer"], source="q")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args, "--no-progress"], catch_exceptions=False)


def table_rows(output: str) -> dict[str, tuple[str, str]]:
    """STAGE -> (STATUS, FIGURES / REASON) from the printed table."""
    lines = output[output.index("STAGE") :].splitlines()[1:]
    rows = {}
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) >= 3 and "/" in parts[0]:
            rows[parts[0]] = (parts[1], parts[3] if len(parts) > 3 else "")
    return rows


# ------------------------------------------------------------------------------------- end to end


def teacher_output(server: VllmServer, row: dict[str, Any]) -> str:
    """What the teacher writes for the question's first round (the stage's prompt, seed and sampling)."""
    endpoint = Endpoint(url=server.url, model=server.model, concurrency=1, timeout_seconds=120)
    seed = derive_seed(TEACHER_SAMPLING.seed, row["id"], 0)
    prompt = prompt_for_text(user_text(question(row), PromptSpec()), PromptSpec(), seed=seed)
    with OpenAIGenerator(endpoint) as generator:
        (completion,) = generator.generate([prompt], TEACHER_SAMPLING)
    return completion.samples[0].text


def stop_after_a_digit(text: str) -> tuple[str, str] | None:
    for p in range(1, len(text) - 2):
        stop = text[p : p + 2]
        if text[p - 1].isdigit() and text.find(stop) == p and stop.strip():
            return stop, text[:p]
    return None


def pool_with_a_solvable_question(server: VllmServer) -> tuple[list[dict[str, Any]], str, str]:
    """Six questions, one of whose references is what the teacher will answer; and the stop string."""
    rows = math500(12)
    for index, row in enumerate(rows):
        found = stop_after_a_digit(teacher_output(server, row))
        reference = verify_math(found[1], "0").extracted if found else None
        if found and reference is not None:
            rows[index] = {**row, "answer": reference}
            return [rows[index], *[r for i, r in enumerate(rows) if i != index][:5]], found[0], row["id"]
    pytest.fail("no teacher output with a digit among 12 MATH-500 questions")


def chain_yaml(root: Path, tiny_lm: Path, server: VllmServer, stop: str) -> Path:
    """The four kinds, paths relative to the YAML file (the questions sit beside it)."""
    engine = {
        "engine": "vllm",
        "batchSize": 8,
        "vllm": {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]},
    }
    grading = {
        "questions": {"path": "questions.jsonl", "fields": {"id": "id"}},
        "model": {"path": os.path.relpath(tiny_lm, root), "maxModelLen": 1024},
        "inference": engine,
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 32, "temperature": 1.0, "seed": 3},
        "grader": {"method": "passRate"},
        "verification": {"workers": 1},
        "bankRef": {"name": "bank"},
    }
    teacher = {
        "endpoint": {"url": server.url, "model": server.model, "concurrency": 1, "timeoutSeconds": 120},
        "sampling": {**TEACHER_SAMPLING.model_dump(by_alias=True), "stop": [stop]},
        "maxAttempts": 1,
    }
    training = {"epochs": 4, "learningRate": 1e-3, "warmupRatio": 0, "lrScheduler": "constant",
                "gradientAccumulationSteps": 1, "maxSeqLength": 1024,
                "packing": False, "gradientCheckpointing": False, "loggingSteps": 1,
                "saveSteps": 100}  # fmt: skip
    evaluation = {
        "datasets": [{"name": "pool", "path": "questions.jsonl", "fields": {"id": "id"}}],
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 16, "temperature": 1.0, "seed": 1},
        "inference": {"engine": "transformers", "batchSize": 8},
        "verification": {"workers": 1},
    }
    docs = [
        doc("SFTJob", "sft", {"dataset": {"distillationJobRef": {"name": "distil"}}, "training": training,
                              "deepspeed": {"stage": 0}, "resources": {"gpus": 0}, "evaluation": evaluation}),
        doc("DistillationJob", "distil", {"bankRef": {"name": "bank"}, "size": 6, "teacher": teacher,
                                          "distribution": {"fromGradingRun": {"name": "pool"}},
                                          "filter": {"requireReasoning": False}}),
        doc("DifficultyBank", "bank", {}),
        doc("GradingRun", "pool", grading),
    ]  # fmt: skip
    path = root / "distill.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def test_chain_end_to_end_then_a_rerun_touches_nothing(
    tiny_lm: Path, vllm_server: VllmServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    rows, stop, special = pool_with_a_solvable_question(vllm_server)
    write_jsonl(project / "questions.jsonl", rows)
    spec = chain_yaml(project, tiny_lm, vllm_server, stop)
    work = tmp_path / "work"
    result = run_cli(str(spec), "--workdir", str(work))
    assert result.exit_code == 0, result.output
    table = table_rows(result.stdout)
    assert list(table) == ["GradingRun/pool", "DifficultyBank/bank", "DistillationJob/distil", "SFTJob/sft"]
    assert {status for status, _ in table.values()} == {"done"}

    base = work / "default"
    graded = list(read_records(base / "GradingRun" / "pool", GradedQuestion))
    assert sorted(r.key for r in graded) == sorted(r["id"] for r in rows)
    accuracy = sum(bool(r.solved) for r in graded) / len(graded)
    assert f"accuracy {100 * accuracy:.1f} %" in table["GradingRun/pool"][1]
    for kind in ("GradingRun/pool", "DifficultyBank/bank", "DistillationJob/distil", "SFTJob/sft"):
        verify_artifact(base / kind)
    examples = list(read_records(base / "DistillationJob" / "distil", SftExample))
    assert special in {e.question_id for e in examples}  # the question built to be kept was kept
    assert f"kept {len({e.question_id for e in examples})} of 6" in table["DistillationJob/distil"][1]
    sft = json.loads((base / "SFTJob" / "sft" / "summary.json").read_text())
    assert sft["loss"] < sft["first_loss"]  # four epochs on the kept example(s) at lr 1e-3
    evaluation = json.loads((base / "SFTJob" / "sft" / "evaluation" / "summary.json").read_text())
    assert set(evaluation["models"]) == {"model", "base"}
    assert evaluation["models"]["base"]["model"] == str(tiny_lm)
    assert "pool " in table["SFTJob/sft"][1] and "->" in table["SFTJob/sft"][1]
    assert (base / "SFTJob" / "sft" / "evaluation" / "EVAL.md").read_text().startswith("# Evaluation")

    before = mtimes(work)
    again = run_cli(str(spec), "--workdir", str(work))
    assert again.exit_code == 0, again.output
    assert {status for status, _ in table_rows(again.stdout).values()} == {"skipped-complete"}
    assert table_rows(again.stdout)["GradingRun/pool"][1] == table["GradingRun/pool"][1]
    assert mtimes(work) == before


# ------------------------------------------------------------------------------------- failures


def test_failing_stage_skips_its_dependants_and_not_the_others(tmp_path: Path) -> None:
    rows = math500(4)
    write_jsonl(tmp_path / "questions.jsonl", rows)
    write_jsonl(
        tmp_path / "responses.jsonl", [{"id": r["id"], "response": f"\\boxed{{{r['answer']}}}"} for r in rows]
    )
    (tmp_path / "broken-model").mkdir()
    (tmp_path / "broken-model" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    questions = {"path": "questions.jsonl", "fields": {"id": "id"}}
    bad = {
        "questions": questions,
        "model": {"path": "broken-model"},
        "inference": {"engine": "transformers"},
        "sampling": {"samplesPerQuestion": 2},
        "grader": {"method": "passRate"},
        "bankRef": {"name": "bad-bank"},
    }
    good = {
        "questions": questions,
        "model": {"path": "broken-model"},
        "responses": {"path": "responses.jsonl"},
        "sampling": {"samplesPerQuestion": 2},
        "grader": {"method": "passRate"},
        "verification": {"workers": 1},
    }
    teacher = {"endpoint": {"url": "http://127.0.0.1:9/v1", "model": "t"}}
    docs = [
        doc("GradingRun", "bad", bad), doc("DifficultyBank", "bad-bank", {}),
        doc("DistillationJob", "bad-distil", {"bankRef": {"name": "bad-bank"}, "size": 1, "teacher": teacher,
                                              "distribution": {"prior": {}}}),
        doc("GradingRun", "good", good),
        doc("DifficultyBank", "good-bank", {"sources": [{"gradingRunRef": {"name": "good"}}]}),
    ]  # fmt: skip
    spec = tmp_path / "chain.yaml"
    spec.write_text(yaml.safe_dump_all(docs))
    result = run_cli(str(spec), "--workdir", str(tmp_path / "work"))
    assert result.exit_code == 1
    table = table_rows(result.stdout)
    status, reason = table["GradingRun/bad"]
    # The reason is the exception's message (here transformers refusing the broken model directory).
    assert status == "failed" and reason.startswith("ValueError: ")
    assert f"GradingRun/bad failed: {reason}" in result.stderr
    assert table["DifficultyBank/bad-bank"] == (
        "skipped-dependency-failed",
        "input GradingRun/bad did not complete",
    )
    assert table["DistillationJob/bad-distil"] == (
        "skipped-dependency-failed", "input DifficultyBank/bad-bank did not complete",
    )  # fmt: skip
    assert table["GradingRun/good"] == (
        "done",
        "4 questions, accuracy 100.0 %, levels 0:4 1:0 2:0 3:0 4:0 5:0",
    )
    assert table["DifficultyBank/good-bank"][0] == "done"
    assert not (tmp_path / "work" / "default" / "DifficultyBank" / "bad-bank").exists()


def test_invalid_file_stops_before_any_stage(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "questions.jsonl", math500(1))
    spec = tmp_path / "one.yaml"
    spec.write_text(yaml.safe_dump(doc("GradingRun", "g", {
        "questions": {"path": "questions.jsonl"}, "model": {"path": "models/none"},
        "sampling": {"samplesPerQuestion": 2}, "grader": {"method": "passRate"}})))  # fmt: skip
    result = CliRunner().invoke(main, ["run", str(spec), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert f"document 1 (GradingRun/g): spec.model.path: {tmp_path / 'models' / 'none'} does not exist" in (
        result.output
    )
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------------- kill and resume


def test_kill_mid_stage_then_resume(tmp_path: Path) -> None:
    """Grading over HTTP against a server that stalls on the fourth question: the run is SIGKILLed once
    three questions are logged; the rerun grades only what is left and the artifact has no duplicates."""
    rows = math500(6)
    write_jsonl(tmp_path / "questions.jsonl", rows)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")  # served remotely: only the spec names it
    stalled = user_text(question(rows[3]), PromptSpec())
    with FaultServer(script={stalled: ["stall"]}, stall_s=600) as server:
        endpoint = {"url": server.url, "model": "m", "concurrency": 1, "maxRetries": 0, "timeoutSeconds": 600}
        grading = {"questions": {"path": "questions.jsonl", "fields": {"id": "id"}},
                   "model": {"path": "model"},
                   "inference": {"engine": "http", "endpoint": endpoint, "batchSize": 1},
                   "sampling": {"samplesPerQuestion": 2, "maxTokens": 16}, "grader": {"method": "passRate"},
                   "verification": {"workers": 1}}  # fmt: skip
        docs = [doc("GradingRun", "pool", grading), doc("DifficultyBank", "bank", {"sources": [
            {"gradingRunRef": {"name": "pool"}}]})]  # fmt: skip
        spec = tmp_path / "chain.yaml"
        spec.write_text(yaml.safe_dump_all(docs))
        work = tmp_path / "work"
        command = [sys.executable, "-c", "from adacot.cli.main import main; main()", "run", str(spec),
                   "--workdir", str(work), "--no-progress"]  # fmt: skip
        logs = work / "default" / "GradingRun" / "pool" / "_work" / "graded"
        process = subprocess.Popen(
            command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 240  # a guard against a hang, not a timing assertion
            while sum(p.read_text().count("\n") for p in logs.glob("log-*.jsonl")) < 3:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the run never logged three questions"
                process_wait(process, 0.1)  # the stall on question 4 keeps the run in this state
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert not (work / "default" / "GradingRun" / "pool" / "_SUCCESS").exists()
        done_before = {r["id"]: len(server.attempts(user_text(question(r), PromptSpec()))) for r in rows[:3]}

        result = run_cli(str(spec), "--workdir", str(work))
        assert result.exit_code == 0, result.output
        assert {s for s, _ in table_rows(result.stdout).values()} == {"done"}
        # The three questions logged before the kill were not asked again.
        assert {
            r["id"]: len(server.attempts(user_text(question(r), PromptSpec()))) for r in rows[:3]
        } == done_before
        assert len(server.attempts(stalled)) >= 2
    keys = [r.key for r in read_records(work / "default" / "GradingRun" / "pool", GradedQuestion)]
    assert sorted(keys) == [r["id"] for r in rows]  # every question once, no duplicates
    verify_artifact(work / "default" / "GradingRun" / "pool")
