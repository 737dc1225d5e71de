"""The `kube_api` fixture (an emulated Kubernetes API server in its own process) and `make_kubectl`.

Registered by tests/conftest.py. Each test gets a fresh server (empty store with the default
namespaces) on a free port, a kubeconfig for kubectl, kopf and kubernetes.config.load_kube_config, an
`objects()` accessor that reads through the API like any client, and the request log (one dict per
request: method, path, verb, group, resource, namespace, name, subresource, user_agent, code) for RBAC
checks. The server is stopped (SIGTERM, then SIGKILL) when the test ends; its stderr is shown when
it fails to start.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .discovery import AGGREGATED

TESTS_DIR = Path(__file__).resolve().parents[1]
CRDS = TESTS_DIR.parent / "crds"
SAMPLES = CRDS / "samples"
GROUP, VERSION = "adacot.dev", "v1alpha1"
KUBECTL = "/usr/bin/kubectl"
START_TIMEOUT_S = 60
TOKEN = "emulator-token"  # accepted and never checked; present so clients send an Authorization header


@dataclass
class KubeApi:
    url: str
    kubeconfig: Path
    log: Path
    cache_dir: Path
    _cache: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def requests(self) -> list[dict[str, Any]]:
        """Every request served so far, oldest first."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line]

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of `resource` (plural, optionally `plural.group`), in one namespace or all."""
        base = self._collection(resource, namespace)
        response = httpx.get(self.url + base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        response.raise_for_status()
        return list(response.json()["items"])

    def _collection(self, resource: str, namespace: str | None) -> str:
        plural, _, group = resource.partition(".")
        for refresh in (False, True):  # a resource missing from the cache may be a CRD applied since
            entry = next(
                (e for e in self._resources(refresh) if e["name"] == plural and group in ("", e["group"])),
                None,
            )
            if entry is not None:
                break
        else:
            raise KeyError(f"the emulator serves no resource {resource!r}")
        prefix = f"/apis/{entry['group']}/{entry['version']}" if entry["group"] else "/api/v1"
        scope = f"/namespaces/{namespace}" if namespace and entry["namespaced"] else ""
        return f"{prefix}{scope}/{plural}"

    def _resources(self, refresh: bool) -> list[dict[str, Any]]:
        """Served resources (name, group, version, namespaced) from aggregated discovery, cached."""
        if refresh or not self._cache:
            accept = {"Accept": AGGREGATED}
            self._cache = [
                {
                    "name": r["resource"],
                    "group": g["metadata"]["name"],
                    "version": v["version"],
                    "namespaced": r["scope"] == "Namespaced",
                }
                for path in ("/api", "/apis")
                for g in httpx.get(self.url + path, headers=accept, timeout=30).json()["items"]
                for v in g["versions"]
                for r in v["resources"]
            ]
        return self._cache


def write_kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "admin", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "emulator", "context": {"cluster": "emulator", "user": "admin", "namespace": "default"}}
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_emulator(workdir: Path) -> tuple[subprocess.Popen[str], KubeApi]:
    """Start the server process and wait for its READY line."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    log, errors = workdir / "requests.jsonl", workdir / "server.err"
    command = [sys.executable, "-m", "kube.server", "--log", str(log)]
    with errors.open("w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink, text=True, env=env)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        stop(process)
        pytest.fail(f"API emulator did not start: {line!r}\n{errors.read_text()[-4000:]}")
    url = line.split()[1]
    api = KubeApi(url, write_kubeconfig(workdir / "kubeconfig", url), log, workdir / "kubectl-cache")
    return process, api


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s: a test's server process never outlives its fixture."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    process, api = start_emulator(tmp_path_factory.mktemp("kube_api"))
    try:
        yield api
    finally:
        stop(process)


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def make_kubectl(api: KubeApi) -> Kubectl:
    """`kubectl(*args, input=None, check=True, timeout=60)` running /usr/bin/kubectl against `api`."""

    def kubectl(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, "--kubeconfig", str(api.kubeconfig), "--cache-dir", str(api.cache_dir), *args]
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
            )
        return done

    return kubectl


def sample(kind: str) -> dict[str, Any]:
    """The `kind` document of crds/samples/<kind>.yaml, read with PyYAML."""
    docs = yaml.safe_load_all((SAMPLES / f"{kind.lower()}.yaml").read_text(encoding="utf-8"))
    return next(d for d in docs if d and d["kind"] == kind)


def apply_run(kubectl: Kubectl) -> None:
    """The sample GradingRun, as JSON: tests of behaviour do not depend on how kubectl reads YAML."""
    kubectl("apply", "-f", "-", input=json.dumps(sample("GradingRun")))
