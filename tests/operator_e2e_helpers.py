"""The pieces of the operator end-to-end tests: kubectl against the emulator, the operator as a real
`kopf run` process, the claims the local kubelet maps to directories, and the four-kind chain on the
session's tiny model (grading and distillation against the session's vLLM server, SFT on CPU), and a
proxy in front of that server that holds a stage's requests until the test lets them through.

Used by tests/integration/test_operator_e2e.py only. The chain copies the light settings of
tests/integration/test_runner.py (few questions, short sampling, the question made solvable from the
teacher's own seeded output, so SFT has something to train on).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kube.fixtures import KubeApi, make_kubectl

NS = "default"


class Kubectl:
    """kube.fixtures' kubectl in the test namespace, plus JSON getters and `kubectl wait`."""

    def __init__(self, api: KubeApi) -> None:
        self.kubeconfig = Path(api.kubeconfig)
        self._kubectl = make_kubectl(api)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._kubectl("-n", NS, *args, input=stdin, check=check, timeout=900)

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return json.loads(self("get", kind, name, "-o", "json"))  # type: ignore[no-any-return]

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        return json.loads(self("get", kind, *selector, "-o", "json"))["items"]  # type: ignore[no-any-return]

    def wait(self, target: str, condition: str, timeout_s: int) -> None:
        self("wait", *target.split(), f"--for={condition}", f"--timeout={timeout_s}s")


class Operator:
    """`kopf run -m adacot_operator.handlers` as a subprocess pointed at the emulator; its log in a file."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ADACOT_METRICS_PORT": "0"}
        command = [str(Path(sys.executable).parent / "kopf"), "run", "-m", "adacot_operator.handlers",
                   "--standalone", "--namespace", NS]  # fmt: skip
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer work, as when a node dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 80) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


def claim(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"accessModes": ["ReadOnlyMany"],
                     "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip


def fill_claims(volume_root: Path, tiny_lm: Path, questions: list[dict[str, Any]]) -> None:
    """What the `models` and `datasets` PVCs hold, in the directories the kubelet mounts for them."""
    shutil.copytree(tiny_lm, volume_root / "pvc" / "models" / "tiny")
    datasets = volume_root / "pvc" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": NS},
            "spec": spec}  # fmt: skip


def grading_spec(server_url: str, model_path: str, bank: str | None) -> dict[str, Any]:
    endpoint = {"url": server_url, "model": "tiny", "concurrency": 2, "timeoutSeconds": 120}
    spec = {
        "questions": {"path": "pool.jsonl", "claimName": "datasets", "fields": {"id": "id"}},
        "model": {"path": model_path, "claimName": "models"},
        "inference": {"engine": "http", "endpoint": endpoint, "batchSize": 8},
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 32, "temperature": 1.0, "seed": 3},
        "grader": {"method": "passRate"},
        "verification": {"workers": 1},
        "backoffLimit": 0,
    }
    return {**spec, "bankRef": {"name": bank}} if bank else spec


def chain(server_url: str, teacher_sampling: dict[str, Any], suspend_sft: bool) -> list[dict[str, Any]]:
    """GradingRun pool (2 shards) -> DifficultyBank bank -> DistillationJob distil (P_eval from pool) ->
    SFTJob sft."""
    teacher = {"endpoint": {"url": server_url, "model": "tiny", "concurrency": 1, "timeoutSeconds": 120},
               "sampling": teacher_sampling, "maxAttempts": 1}  # fmt: skip
    training = {"epochs": 2, "learningRate": 1e-3, "warmupRatio": 0, "lrScheduler": "constant",
                "gradientAccumulationSteps": 1, "maxSeqLength": 1024, "packing": False,
                "gradientCheckpointing": False, "loggingSteps": 1, "saveSteps": 100}  # fmt: skip
    sft = {"dataset": {"distillationJobRef": {"name": "distil"}}, "training": training,
           "deepspeed": {"stage": 0}, "resources": {"gpus": 0}, "backoffLimit": 0,
           "suspend": suspend_sft}  # fmt: skip
    distil = {"bankRef": {"name": "bank"}, "size": 6, "teacher": teacher, "backoffLimit": 0,
              "distribution": {"fromGradingRun": {"name": "pool"}},
              "filter": {"requireReasoning": False}}  # fmt: skip
    return [
        doc("GradingRun", "pool", {**grading_spec(server_url, "tiny", "bank"), "shards": 2}),
        doc("DifficultyBank", "bank", {"backoffLimit": 0}),
        doc("DistillationJob", "distil", distil),
        doc("SFTJob", "sft", sft),
    ]


def dump(docs: list[dict[str, Any]], path: Path) -> Path:
    """A multi-document YAML file of JSON documents: every key quoted, so kubectl's YAML 1.1 reader
    keeps any key such as `n`, `y` or `on` a string instead of reading it as a boolean."""
    path.write_text("".join(f"---\n{json.dumps(d, indent=1)}\n" for d in docs))
    return path


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (resource.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    assert found, f"{resource['kind']}/{resource['metadata']['name']} has no {kind} condition: {resource}"
    return dict(found[0])


class GatedProxy:
    """An OpenAI-compatible endpoint in front of `upstream` that holds every request until `open()`:
    a stage whose requests go through it is provably mid-run while closed (`arrived` is set once the
    first request waits). Requests and answers pass through unchanged, so seeded outputs stay the same."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.arrived, self._open = threading.Event(), threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _forwarding(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def open(self) -> None:
        self._open.set()

    def __enter__(self) -> GatedProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def forward(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if method == "POST":
            self.arrived.set()
            self._open.wait()
        url = self.upstream + path.removeprefix("/v1")
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def _forwarding(proxy: GatedProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._reply(*proxy.forward("GET", self.path, None))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._reply(*proxy.forward("POST", self.path, body))

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
