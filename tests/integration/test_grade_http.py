"""Grading over HTTP: MATH-500 questions answered by the session's tiny model behind a real
OpenAI-compatible vLLM server (`vllm_server`), scored by a locally built discriminative PRM (random
weights: real mechanics, meaningless levels), first through `run_grading_run`, then through `adacot grade
--spec`. What the server itself counted (its Prometheus /metrics) is checked against the usage the
manifest reports, so a request lost, repeated or miscounted by the HTTP backend fails the test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from conftest import MATH500, VllmServer

from adacot.api.grading_run import GradingRun
from adacot.artifacts import GradedQuestion, read_manifest, read_records, verify_artifact
from adacot.artifacts.store import SUCCESS_NAME
from adacot.cli.main import main
from adacot.pipelines.grading_run import run_grading_run
from adacot.stages.steps import split_steps

pytestmark = pytest.mark.integration
QUESTIONS = 8
K = 2
MAX_TOKENS = 32
CHAT_ROUTE = "/v1/chat/completions"


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adacot.testing.tiny_prm import build_tiny_discriminative_prm

    return build_tiny_discriminative_prm(tmp_path_factory.mktemp("prm") / "disc", seed=1)


def grading_resource(server: VllmServer, model_dir: Path, prm: Path) -> dict[str, Any]:
    return {
        "apiVersion": "adacot.dev/v1alpha1", "kind": "GradingRun", "metadata": {"name": "http"},
        "spec": {
            "questions": {"path": str(MATH500), "limit": QUESTIONS},
            "model": {"path": str(model_dir)},
            # batchSize 3: three chunks (3, 3, 2), so usage must add up across chunks.
            "inference": {"engine": "http", "batchSize": 3, "endpoint": {
                "url": server.url, "model": server.model, "concurrency": 4, "timeoutSeconds": 120}},
            "sampling": {"samplesPerQuestion": K, "maxTokens": MAX_TOKENS, "temperature": 1.0, "seed": 11},
            # 32 tokens cut most answers off; `scored` still sends them to the PRM, which is under test.
            "grader": {"prm": {"model": {"path": str(prm)}, "stepSplit": "newlines"}, "truncated": "scored"},
            "verification": {"workers": 1},
        },
    }  # fmt: skip


def server_counters(server: VllmServer) -> dict[str, float]:
    """Successful chat requests and generated tokens as the server counts them."""
    text = httpx.get(server.url.removesuffix("/v1") + "/metrics", timeout=10).text
    return {
        "requests": _metric_sum(text, "http_requests_total", f'handler="{CHAT_ROUTE}"', 'status="2xx"'),
        "generation_tokens": _metric_sum(text, "vllm:generation_tokens_total"),
    }


def _metric_sum(text: str, name: str, *labels: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    return sum(float(m[2]) for m in pattern.finditer(text) if all(label in (m[1] or "") for label in labels))


def check_records(records: list[GradedQuestion]) -> None:
    assert len(records) == QUESTIONS
    for record in records:
        assert len(record.attempts) == K, record.key
        for attempt in record.attempts:
            assert attempt.finish_reason in ("stop", "length")
            assert (attempt.prompt_tokens or 0) > 0 and 0 < (attempt.completion_tokens or 0) <= MAX_TOKENS
            assert attempt.verdict is not None and attempt.verdict.correct is not None
        if record.solved:
            assert record.level == 0
            continue
        assert record.level is not None and 1 <= record.level <= 5 and record.score is not None
        for attempt in (a for a in record.attempts if a.verdict and a.verdict.correct is False):
            steps = split_steps(attempt.text, "newlines")
            assert attempt.step_scores is not None and len(attempt.step_scores) == len(steps) > 0
            assert all(0 <= s <= 1 for s in attempt.step_scores)


def test_grade_math500_through_a_real_vllm_server(
    vllm_server: VllmServer, tiny_lm: Path, prm_dir: Path, tmp_path: Path
) -> None:
    raw = grading_resource(vllm_server, tiny_lm, prm_dir)
    before = server_counters(vllm_server)
    out = tmp_path / "graded"
    summary = run_grading_run(GradingRun.model_validate(raw), out)
    after = server_counters(vllm_server)

    assert (out / SUCCESS_NAME).is_file()
    verify_artifact(out)
    manifest = read_manifest(out)
    records = list(read_records(out, GradedQuestion))
    assert manifest.total_records == manifest.metrics["questions"] == QUESTIONS
    check_records(records)
    assert summary["questions"] == QUESTIONS and summary["unverifiable"] == 0
    assert sum(summary["level_counts"].values()) == QUESTIONS
    assert summary["level_counts"]["0"] == sum(1 for r in records if r.solved)

    usage = manifest.metrics["usage"]
    sent = after["requests"] - before["requests"]
    # The server honours n, so one request per question; no retries or failures against a healthy server.
    assert (usage["requests"], usage["retries"], usage["failures"]) == (sent, 0, 0) == (QUESTIONS, 0, 0)
    completion = sum(a.completion_tokens or 0 for r in records for a in r.attempts)
    assert (
        usage["completion_tokens"] == completion == after["generation_tokens"] - before["generation_tokens"]
    )
    assert manifest.metrics["tokens"]["completion"] == completion
    assert manifest.metrics["grading"]["prm_traces"] == sum(
        1 for r in records if not r.solved for a in r.attempts if a.verdict and a.verdict.correct is False
    )

    # The same spec through the CLI: same records (the server's seeded sampling repeats the texts).
    spec_file = tmp_path / "grading.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    cli_out = tmp_path / "cli"
    result = CliRunner().invoke(
        main,
        ["grade", "--spec", str(spec_file), "--out", str(cli_out), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{\n") :])["questions"] == QUESTIONS
    again = list(read_records(cli_out, GradedQuestion))
    assert read_manifest(cli_out).total_records == len(again) == QUESTIONS
    assert [[a.text for a in r.attempts] for r in again] == [[a.text for a in r.attempts] for r in records]
