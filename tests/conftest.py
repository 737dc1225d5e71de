"""Session fixtures shared by every test tier.

`tiny_lm`: one tiny Qwen2 model (byte-level BPE tokenizer with a ChatML template, random weights) built
once per session from MATH-500 problems; every engine test reuses it. `vllm_server`: a real
OpenAI-compatible vLLM server process on that model (started on first use, health-checked on
/v1/models, stopped at session end; its log is printed when it fails to come up).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kube.fixtures import kube_api  # noqa: F401 - the Kubernetes API emulator fixture
from shared_data import SHARED_DATA

from adacot.backends.teacher_server import stop, wait_until_ready
from adacot.testing.tiny_models import build_tiny_lm

MATH500 = SHARED_DATA / "math500.jsonl"
SERVER_START_TIMEOUT_S = 300
# A fixed KV cache: on the CPU build vLLM otherwise reserves a share of the host's memory and refuses
# to start when other processes (parallel test runs) hold it.
KV_CACHE_BYTES = str(256 << 20)


def math500_problems(limit: int | None = None) -> list[str]:
    with MATH500.open(encoding="utf-8") as f:
        problems = [json.loads(line)["problem"] for line in f]
    return problems[:limit] if limit else problems


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the session's tiny model (tokenizer + weights + generation_config)."""
    return build_tiny_lm(math500_problems(), tmp_path_factory.mktemp("tiny_lm"), seed=0)


@dataclass(frozen=True)
class VllmServer:
    url: str
    """Base URL including /v1."""
    model: str
    """The model name the server answers to."""
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def vllm_server(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("vllm_server") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_lm),
        "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "1024", "--kv-cache-memory-bytes", KV_CACHE_BYTES,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )
    server = VllmServer(url=f"http://127.0.0.1:{port}/v1", model="tiny", log=log)
    try:
        wait_until_ready(process, server.url, SERVER_START_TIMEOUT_S, log)  # the product's own health check
        yield server
    finally:
        stop(process)


def process_wait(process: subprocess.Popen[bytes], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)


def run_json(command: list[str], timeout: float = 300) -> dict[str, Any]:
    """Run a helper script to completion (no stdin) and return the JSON object on its last stdout line."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
