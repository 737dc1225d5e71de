"""Worker progress reports (adacot.progress.publish) against a real local HTTP server that records each
request: merge-patch body and bearer header, throttling, the final report, and that a dead or refusing
API server never fails the stage nor leaks the token into logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from adacot.progress.meter import ProgressMeter, ProgressUpdate
from adacot.progress.publish import StatusPublisher, progress_body, published

TOKEN = "tok-s3cret-value"
STATUS_PATH = "/apis/adacot.dev/v1alpha1/namespaces/ml/gradingruns/pool/status"


class Recorder(ThreadingHTTPServer):
    """An API server stand-in: records (method, path, headers, body) and answers `code`."""

    def __init__(self, code: int = 200) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.code = code
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[dict[str, Any]]:
        return [body["status"]["progress"] for _, _, _, body in self.requests if "progress" in body["status"]]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("PATCH", self.path, dict(self.headers), body))
        self.send_response(self.server.code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.shutdown()
    recorder.server_close()
    thread.join()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def report(done: int, total: int = 10) -> ProgressUpdate:
    return ProgressUpdate(done, total, rate=None, eta_seconds=None)


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_patch_carries_merge_patch_bearer_token_and_camel_case(server: Recorder, token_file: Path) -> None:
    reporter = StatusPublisher(server.url + STATUS_PATH, token_file)
    reporter(ProgressUpdate(3, 12, rate=1.5, eta_seconds=6.0))
    method, path, headers, body = server.requests[0]
    assert (method, path) == ("PATCH", STATUS_PATH)
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert body == {
        "status": {"progress": {"done": 3, "total": 12, "percent": 25.0, "rate": 1.5, "etaSeconds": 6.0}}
    }


def test_reports_are_throttled_and_the_final_one_always_goes(server: Recorder, token_file: Path) -> None:
    clock = Clock()
    reporter = StatusPublisher(server.url + STATUS_PATH, token_file, clock=clock)
    for t, done in [(0, 0), (1, 1), (2, 2), (6, 6), (7, 7), (8, 10)]:
        clock.now = t
        reporter(report(done))
    assert [b["done"] for b in server.bodies()] == [0, 6, 10]
    reporter.close()
    assert len(server.requests) == 3  # nothing was pending


def test_pending_report_is_sent_when_the_stage_ends(server: Recorder, token_file: Path) -> None:
    clock = Clock()
    reporter = StatusPublisher(server.url + STATUS_PATH, token_file, clock=clock)
    reporter(report(1))
    clock.now = 1
    reporter(report(4))
    assert [b["done"] for b in server.bodies()] == [1]
    reporter.close()
    assert [b["done"] for b in server.bodies()] == [1, 4]


def test_dead_server_never_raises_and_warns_once_without_the_token(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    reporter = StatusPublisher(dead_url() + STATUS_PATH, token_file, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="adacot.progress.publish"):
        for t in range(0, 200, 6):
            clock.now = t
            reporter(report(t % 10))
        reporter(report(10))
        reporter.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "progress report to http://127.0.0.1" in warnings[0].getMessage()
    assert TOKEN not in caplog.text and reporter.sent == 0


def test_refused_report_is_dropped_and_the_token_stays_out_of_logs(
    server: Recorder, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.code = 403
    reporter = StatusPublisher(server.url + STATUS_PATH, token_file)
    with caplog.at_level(logging.WARNING, logger="adacot.progress.publish"):
        reporter(report(10))
    assert "403" in caplog.text and TOKEN not in caplog.text and reporter.sent == 0
    assert len(server.requests) == 1


def test_from_env_builds_the_in_cluster_url_and_skips_when_not_asked(token_file: Path) -> None:
    base = {"ADACOT_STATUS_PATH": STATUS_PATH, "ADACOT_TOKEN_FILE": str(token_file)}
    assert StatusPublisher.from_env({}) is None
    assert StatusPublisher.from_env({**base, "JOB_COMPLETION_INDEX": "2"}) is None
    in_cluster = StatusPublisher.from_env(
        {**base, "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert in_cluster is not None and in_cluster.url == f"https://10.0.0.1:443{STATUS_PATH}"
    assert in_cluster.token_file == token_file
    v6 = StatusPublisher.from_env({**base, "KUBERNETES_SERVICE_HOST": "fd00::1", "JOB_COMPLETION_INDEX": "0"})
    assert v6 is not None and v6.url.startswith("https://[fd00::1]:443/apis/")
    override = StatusPublisher.from_env({**base, "ADACOT_API_SERVER": "http://127.0.0.1:1/"})
    assert (
        override is not None
        and override.url == f"http://127.0.0.1:1{STATUS_PATH}"
        and override.ca_file is None
    )
    assert StatusPublisher.from_env({"ADACOT_STATUS_PATH": STATUS_PATH}) is None  # no server known


def test_reported_feeds_the_local_callback_and_the_api(server: Recorder, token_file: Path) -> None:
    seen: list[int] = []
    env = {
        "ADACOT_STATUS_PATH": STATUS_PATH,
        "ADACOT_API_SERVER": server.url,
        "ADACOT_TOKEN_FILE": str(token_file),
    }
    with published(lambda r: seen.append(r.done), environ=env) as progress:
        meter = ProgressMeter(3, progress)
        meter.advance()
        meter.advance(2)
    assert seen == [0, 1, 3]
    assert [b["done"] for b in server.bodies()] == [0, 3]  # 1 was throttled, 3 is final
    final = progress_body(report(3, 3))["status"]["progress"]
    assert {k: v for k, v in server.bodies()[-1].items() if k in final} == final


def test_without_status_path_only_the_local_callback_runs(tmp_path: Path) -> None:
    seen: list[int] = []
    (tmp_path / "_SUCCESS").touch()
    (tmp_path / "MANIFEST.json").write_text("{}")
    with published(lambda r: seen.append(r.done), tmp_path, {}) as progress:
        progress(report(2))
    assert seen == [2]


def test_complete_artifact_reports_records_and_manifest_sha256(
    tmp_path: Path, server: Recorder, token_file: Path
) -> None:
    manifest = json.dumps({"kind": "GradingRun", "total_records": 7}).encode()
    (tmp_path / "MANIFEST.json").write_bytes(manifest)
    env = {"ADACOT_STATUS_PATH": STATUS_PATH, "ADACOT_API_SERVER": server.url,
           "ADACOT_TOKEN_FILE": str(token_file), "JOB_COMPLETION_INDEX": "3"}  # fmt: skip
    with published(None, tmp_path, env):
        pass
    assert server.requests == []  # no _SUCCESS yet: nothing to tell
    (tmp_path / "_SUCCESS").touch()
    with published(None, tmp_path, env):  # any shard may report the finished artifact
        pass
    assert server.requests[-1][3] == {
        "status": {"output": {"records": 7, "sha256": hashlib.sha256(manifest).hexdigest()}}
    }
    with pytest.raises(RuntimeError), published(None, tmp_path, env):
        raise RuntimeError("stage failed")
    assert len(server.requests) == 1  # a failing stage reports no output


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
                 "model": {"path": "/models/student"}, "sampling": {"n": 2},
                 "responses": {"path": str(responses)}, "grader": {"method": "passRate"},
                 "verification": {"workers": 1}},
    }  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _stage(tmp_path: Path, server_url: str, token_file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ADACOT_STATUS_PATH": STATUS_PATH, "ADACOT_API_SERVER": server_url,
           "ADACOT_TOKEN_FILE": str(token_file), "ADACOT_OUTPUT_DIR": str(tmp_path / "out")}  # fmt: skip
    env.pop("JOB_COMPLETION_INDEX", None)
    command = [
        str(Path(sys.executable).parent / "adacot"),
        "stage",
        "gradingrun",
        "--spec",
        str(_grading_spec(tmp_path)),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.integration
def test_stage_command_reports_its_progress(tmp_path: Path, server: Recorder, token_file: Path) -> None:
    done = _stage(tmp_path, server.url, token_file)
    assert done.returncode == 0, done.stderr
    assert server.requests and all(path == STATUS_PATH for _, path, _, _ in server.requests)
    assert server.bodies()[-1] == {"done": 6, "total": 6, "percent": 100.0, **{
        k: v for k, v in server.bodies()[-1].items() if k in ("rate", "etaSeconds")}}  # fmt: skip
    assert TOKEN not in done.stderr + done.stdout
    manifest = (tmp_path / "out" / "MANIFEST.json").read_bytes()
    output = server.requests[-1][3]["status"]["output"]
    assert output == {"records": 6, "sha256": hashlib.sha256(manifest).hexdigest()}


@pytest.mark.integration
def test_stage_command_succeeds_when_the_api_server_is_dead(tmp_path: Path, token_file: Path) -> None:
    done = _stage(tmp_path, dead_url(), token_file)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["questions"] == 6
    assert done.stderr.count("progress report to") == 1 and TOKEN not in done.stderr
