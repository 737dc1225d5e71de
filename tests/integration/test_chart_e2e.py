"""The rendered chart on the API emulator: `kubectl apply` (kubectl 1.37) of everything helm renders, then
the operator Deployment's own command and env run as a process with the emulator's kubeconfig (what the
pod would run, with only the liveness/metrics ports moved to free ones). It must come up live, reconcile
a GradingRun into a Job that uses the chart's worker image and ServiceAccount, serve its metrics, and
every API call it made must be one the chart's RBAC grants its ServiceAccount."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_tools
import httpx
import pytest
import yaml
from chart_rbac import denied_log
from conftest import free_port
from helm_tools import render
from kube import fixtures

layer_tools = helm_tools.layer_tools
helm_bin = helm_tools.helm_bin
kubectl137_bin = helm_tools.kubectl137_bin

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RELEASE_NS = "adacot-system"
WATCHED = "default"
VALUES = {
    "watch": {"allNamespaces": False, "namespaces": [WATCHED]},
    "worker": {"image": {"repository": "registry.internal/adacot/worker-cpu", "tag": "e2e"}},
    "defaults": {"storage": {"size": "3Gi"}},
}
DEADLINE_S = 60


def wait_for(what: str, probe: Callable[[], Any], log: Path, detail: Callable[[], Any] = str) -> Any:
    """Poll `probe` until it returns something truthy; fail with `detail()` and the operator's log after
    DEADLINE_S."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}: {detail()}\noperator log:\n{log.read_text()[-6000:]}")


def kubectl(binary: Path, api: fixtures.KubeApi, *args: str, stdin: str | None = None) -> str:
    command = [str(binary), "--kubeconfig", str(api.kubeconfig), "--cache-dir", str(api.cache_dir), *args]
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def as_json_list(objs: list[dict[str, Any]]) -> str:
    """Objects as a stream of JSON documents, keys exactly as PyYAML read them. kubectl reads YAML as
    YAML 1.1, where a bare key such as `n` is the boolean false (spec.sampling.n was such a key before it
    became samplesPerQuestion). JSON avoids that here; the CRD files themselves survive kubectl's reader
    (test_crds_keep_their_field_names...)."""
    return "\n".join(json.dumps(o) for o in objs)


@pytest.fixture
def operator_process(
    kube_api: fixtures.KubeApi, helm_bin: Path, kubectl137_bin: Path, tmp_path: Path
) -> Iterator[tuple[list[dict[str, Any]], str, str, Path]]:
    """Install the chart on the emulator and start its operator; yields (objects, healthz, metrics, log)."""
    objs = render(helm_bin, VALUES, tmp_path / "helm", "--include-crds", namespace=RELEASE_NS)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NS}}
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    # `kubectl create namespace` would send protobuf, which the emulator does not speak; apply sends JSON.
    for batch in ([namespace, *crds], rest):
        kubectl(kubectl137_bin, kube_api, "apply", "-f", "-", stdin=as_json_list(batch))
    deployment = next(o for o in rest if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    health_port, metrics_port = free_port(), free_port()
    command = [
        f"--liveness=http://127.0.0.1:{health_port}/healthz" if arg.startswith("--liveness=") else arg
        for arg in container["command"]
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    downward = {"metadata.namespace": RELEASE_NS, "metadata.name": "adacot-7d9f-x2k4q"}  # as a kubelet would
    env |= {e["name"]: downward[e["valueFrom"]["fieldRef"]["fieldPath"]]
            for e in container["env"] if "fieldRef" in e.get("valueFrom", {})}  # fmt: skip
    env |= {"ADACOT_METRICS_PORT": str(metrics_port), "KUBECONFIG": str(kube_api.kubeconfig)}
    log = tmp_path / "operator.log"
    kopf = str(Path(sys.executable).with_name(command[0]))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [kopf, *command[1:]],
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield objs, f"http://127.0.0.1:{health_port}/healthz", f"http://127.0.0.1:{metrics_port}/metrics", log
    finally:
        fixtures.stop(process)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def test_chart_operator_runs_on_the_emulator(
    operator_process: tuple[list[dict[str, Any]], str, str, Path],
    kube_api: fixtures.KubeApi,
    kubectl137_bin: Path,
) -> None:
    objs, healthz, metrics, log = operator_process
    installed = {o["metadata"]["name"] for o in kube_api.objects("customresourcedefinitions")}
    assert {"gradingruns.adacot.dev", "sftjobs.adacot.dev"} <= installed
    assert [r["metadata"]["name"] for r in kube_api.objects("roles", WATCHED)] == ["adacot-operator"]
    assert len(kube_api.objects("networkpolicies", WATCHED)) == 3  # stored; the emulator enforces none
    wait_for("the liveness endpoint", lambda: (r := _get(healthz)) is not None and r.status_code == 200, log)

    sample = yaml.safe_load((ROOT / "crds" / "samples" / "gradingrun.yaml").read_text())
    kubectl(kubectl137_bin, kube_api, "apply", "-n", WATCHED, "-f", "-", stdin=as_json_list([sample]))
    status = lambda: [r.get("status") for r in kube_api.objects("gradingruns", WATCHED)]  # noqa: E731
    jobs = wait_for("the GradingRun's Job", lambda: kube_api.objects("jobs", WATCHED), log, status)
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "adacot-worker" and pod["automountServiceAccountToken"] is False
    assert {c["image"] for c in pod["containers"]} == {"registry.internal/adacot/worker-cpu:e2e"}

    reconciled = 'adacot_reconcile_total{kind="GradingRun",result="success"}'
    wait_for("a reconcile in the metrics", lambda: reconciled in getattr(_get(metrics), "text", ""), log)
    lease = kube_api.objects("leases", RELEASE_NS)  # the chart's replicas elect a leader
    assert [(x["metadata"]["name"], x["spec"]["holderIdentity"]) for x in lease] == [
        ("adacot-operator", "adacot-7d9f-x2k4q")
    ]

    operator_calls = [e for e in kube_api.requests() if e["user_agent"].startswith(("kopf", "OpenAPI"))]
    assert operator_calls, json.dumps(kube_api.requests()[-5:])
    assert denied_log(objs, "adacot", RELEASE_NS, operator_calls) == []


def test_crds_keep_their_field_names_through_kubectl(
    kube_api: fixtures.KubeApi, kubectl137_bin: Path
) -> None:
    """`kubectl apply -f charts/adacot/crds/` (what users and helm do with the YAML) installs the schemas
    exactly as written."""
    crd_dir = ROOT / "charts" / "adacot" / "crds"
    kubectl(kubectl137_bin, kube_api, "apply", "-f", str(crd_dir))
    installed = {o["metadata"]["name"]: o for o in kube_api.objects("customresourcedefinitions")}
    for path in sorted(crd_dir.glob("*.yaml")):
        written = yaml.safe_load(path.read_text())
        schema = installed[written["metadata"]["name"]]["spec"]["versions"][0]["schema"]
        assert schema == written["spec"]["versions"][0]["schema"], path.name
