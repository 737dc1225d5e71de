"""Stage progress served read-only (adacot.progress.publish): GET /progress returns the latest report
in the CRD's camelCase shape, nothing is served without the pod's env, a port that cannot be bound never
fails the stage, and one process shares one server per address."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adacot.api.status import Progress
from adacot.progress.meter import ProgressMeter, ProgressUpdate
from adacot.progress.publish import ProgressServer, StatusPublisher, progress_fields, published


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str = "/progress", host: str = "127.0.0.1") -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=3) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as error:
        return error.code, None


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    port = free_port()
    yield {"ADACOT_PROGRESS_PORT": str(port), "ADACOT_POD_IP": "127.0.0.1"}
    ProgressServer.for_address(("127.0.0.1", port)).stop()


def test_published_feeds_the_local_callback_and_serves_the_latest_report(env: dict[str, str]) -> None:
    seen: list[int] = []
    port = int(env["ADACOT_PROGRESS_PORT"])
    with published(lambda r: seen.append(r.done), environ=env) as progress:
        meter = ProgressMeter(3, progress)
        meter.advance()
        assert get(port)[1]["done"] == 1
        meter.advance(2)
    assert seen == [0, 1, 3]
    status, body = get(port)
    assert status == 200 and body["done"] == 3 and body["total"] == 3 and body["percent"] == 100.0
    Progress.model_validate(body)  # the CRD's shape, camelCase
    assert get(port, "/other")[0] == 404


def test_before_any_report_the_endpoint_is_not_even_bound(env: dict[str, str]) -> None:
    publisher = StatusPublisher.from_env(env)
    assert publisher is not None and publisher.server.port is None  # bound lazily, on the first report
    publisher(ProgressUpdate(0, 5, rate=None, eta_seconds=None))
    assert get(int(env["ADACOT_PROGRESS_PORT"]))[1] == {"done": 0, "total": 5, "percent": 0.0}


def test_without_the_port_only_the_local_callback_runs() -> None:
    seen: list[int] = []
    with published(lambda r: seen.append(r.done), {}) as progress:
        progress(ProgressUpdate(2, 10, rate=None, eta_seconds=None))
    assert seen == [2]
    assert StatusPublisher.from_env({}) is None
    assert StatusPublisher.from_env({"ADACOT_PROGRESS_PORT": "x"}) is None


def test_a_port_that_cannot_be_bound_never_fails_the_stage(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"ADACOT_PROGRESS_PORT": str(port), "ADACOT_POD_IP": "127.0.0.1"}
        with caplog.at_level(logging.WARNING), published(None, env) as progress:
            for done in range(3):
                progress(ProgressUpdate(done, 3, rate=None, eta_seconds=None))
        ProgressServer.for_address(("127.0.0.1", port)).stop()
    assert sum("not started" in r.getMessage() for r in caplog.records) == 1


def test_one_process_shares_one_server_per_address(env: dict[str, str]) -> None:
    first, second = StatusPublisher.from_env(env), StatusPublisher.from_env(env)
    assert first is not None and second is not None and first.server is second.server
    first(ProgressUpdate(1, 4, rate=None, eta_seconds=None))
    second(ProgressUpdate(2, 4, rate=2.0, eta_seconds=1.0))
    assert get(int(env["ADACOT_PROGRESS_PORT"]))[1] == {
        "done": 2, "total": 4, "percent": 50.0, "rate": 2.0, "etaSeconds": 1.0}  # fmt: skip


def test_progress_fields_are_the_crd_shape() -> None:
    fields = progress_fields(ProgressUpdate(1, 3, rate=0.123456, eta_seconds=12.34))
    assert fields == {"done": 1, "total": 3, "percent": 33.33, "rate": 0.1235, "etaSeconds": 12.3}
    Progress.model_validate(fields)


def _grading_spec(tmp_path: Path) -> Path:
    questions = tmp_path / "questions.jsonl"
    responses = tmp_path / "responses.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "problem": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(6)
        )
    )
    responses.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "response": f"\\boxed{{{2 * i if i % 2 else -1}}}"}) + "\n"
            for i in range(6)
            for _ in range(2)
        )
    )
    spec = {
        "apiVersion": "adacot.dev/v1alpha1", "kind": "GradingRun", "metadata": {"name": "pool"},
        "spec": {"questions": {"path": str(questions), "fields": {"id": "id"}},
                 "model": {"path": "/models/student"}, "sampling": {"samplesPerQuestion": 2},
                 "responses": {"path": str(responses)}, "grader": {"method": "passRate"},
                 "verification": {"workers": 1}},
    }  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.integration
def test_stage_command_serves_its_progress_while_it_runs(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ADACOT_PROGRESS_PORT": str(port), "ADACOT_POD_IP": "127.0.0.1",
           "ADACOT_OUTPUT_DIR": str(tmp_path / "out")}  # fmt: skip
    command = [str(Path(sys.executable).parent / "adacot"), "stage", "gradingrun", "--spec",
               str(_grading_spec(tmp_path))]  # fmt: skip
    seen: list[dict[str, Any]] = []
    stage = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def poll() -> None:
        while stage.poll() is None:
            try:
                status, body = get(port)
            except OSError:
                status, body = 0, None
            if status == 200:
                seen.append(body)
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    out, err = stage.communicate(timeout=300)
    poller.join()
    assert stage.returncode == 0, err
    assert json.loads(out)["questions"] == 6
    assert seen and all(b["total"] == 6 for b in seen)
