"""The operator as a real `kopf run` process against the API emulator (tests/kube), driven with real
kubectl: a GradingRun gets its ConfigMap, PVC and Job, a status with every condition and an Event; the
Job turning Complete (written the way the Job controller writes it) makes the resource Succeeded;
liveness and Prometheus endpoints answer; a restarted operator adopts the Job instead of creating a
second one; the resource carries no finalizer, so deleting it with the operator stopped completes, garbage
collection removes the Job and ConfigMap and keeps the volume (retention Retain). A Job whose pods the
API server refuses (a ResourceQuota of no pods, the local kubelet as Job controller) shows as Running
False, reason FailedCreate, with the API server's words. Two replicas with leader election: one
Lease holder acts, the other only watches; the leader SIGKILLed, the follower takes the expired Lease
and creates the next resource's Job, with no duplicate Job. An edit of `spec.image` replaces the
unfinished Job with one from the new spec; an edit of an immutable field is refused by the API server.

The full four-kind chain with real stage pods is tests/integration/test_operator_e2e.py; this one needs
no model, no kubelet and finishes in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from adacot_operator.names import child_name
from k8s_objects import sample
from kube.fixtures import make_kubectl
from kube.kubelet import LocalKubelet

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
JOB = child_name("GradingRun", "qwen7b-pool")
DEADLINE_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """`kopf run -m adacot_operator.handlers` in its own process group, with its log in a file."""

    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.log, self.env = kubeconfig, log, env or {}
        self.metrics, self.health = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ADACOT_METRICS_PORT": str(self.metrics),
               **self.env}  # fmt: skip
        kopf = str(Path(sys.executable).parent / "kopf")
        command = [kopf, "run", "-m", "adacot_operator.handlers", "--standalone", "--namespace", "default",
                   f"--liveness=http://127.0.0.1:{self.health}/healthz"]  # fmt: skip
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return str(response.read().decode())


def until(what: str, check: Callable[[], Any], operator: Operator) -> Any:
    """Poll `check` until it returns something truthy (the operator reacts asynchronously)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            value = check()
        except (AssertionError, OSError, KeyError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; operator log:\n{operator.log.read_text()[-6000:]}")


@pytest.fixture
def cluster(kube_api: Any, tmp_path: Path) -> Iterator[tuple[Any, Operator]]:
    kubectl = make_kubectl(kube_api)
    kubectl("apply", "-f", str(REPO / "crds"))
    operator = Operator(Path(kube_api.kubeconfig), tmp_path / "operator.log")
    operator.start()
    try:
        yield kubectl, operator
    finally:
        operator.stop()


def get(kubectl: Any, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", *args, "-o", "json").stdout))


def test_gradingrun_gets_children_status_events_and_completes(
    cluster: tuple[Any, Operator], tmp_path: Path
) -> None:
    kubectl, operator = cluster
    run = sample("GradingRun", "qwen7b-pool")
    run["metadata"] = {"name": "qwen7b-pool", "namespace": "default"}
    # As JSON: kubectl reads YAML 1.1, where bare keys such as `n` or `on` mean booleans.
    kubectl("apply", "-f", "-", input=json.dumps(run))

    job = until("the Job", lambda: get(kubectl, "job", JOB), operator)
    assert get(kubectl, "configmap", JOB)["metadata"]["ownerReferences"][0]["kind"] == "GradingRun"
    assert get(kubectl, "pvc", JOB)["metadata"]["name"] == JOB
    status = until(
        "phase Pending",
        lambda: (s := get(kubectl, "gradingrun", "qwen7b-pool")["status"])["phase"] == "Pending" and s,
        operator,
    )
    assert {c["type"] for c in status["conditions"]} >= {
        "InputsReady",
        "Admitted",
        "Running",
        "Complete",
        "Failed",
        "Ready",
        "Reconciling",
        "Stalled",
    }
    assert status["output"]["claim"] == JOB and status["observedGeneration"] == 1
    events = until(
        "an Event",
        lambda: get(kubectl, "events", "--field-selector", "involvedObject.name=qwen7b-pool")["items"],
        operator,
    )
    assert any(e["reason"] == "Created" for e in events)

    complete = [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]
    done = {"status": {"startTime": "2026-01-01T10:00:00Z", "completionTime": "2026-01-01T10:05:00Z",
                       "succeeded": 1, "conditions": complete}}  # fmt: skip
    kubectl("patch", "job", JOB, "--subresource=status", "--type=merge", "-p", json.dumps(done))
    kubectl("wait", "gradingrun/qwen7b-pool", "--for=condition=Ready", "--timeout=60s")  # kstatus
    final = get(kubectl, "gradingrun", "qwen7b-pool")["status"]
    assert final["completionTime"] == "2026-01-01T10:05:00Z" and final["progress"]["percent"] == 100
    assert final["phase"] == "Succeeded" and final["observedGeneration"] == 1

    assert operator.get(operator.health, "/healthz")
    metrics = operator.get(operator.metrics, "/metrics")
    assert 'adacot_reconcile_total{kind="GradingRun",result="success"}' in metrics
    assert 'adacot_stage_outcomes_total{kind="GradingRun",outcome="succeeded"} 1.0' in metrics

    operator.stop(signal.SIGKILL)
    operator.start()
    until(
        "the restarted operator's first reconcile",
        lambda: 'result="success"' in operator.get(operator.metrics, "/metrics"),
        operator,
    )
    assert get(kubectl, "job", JOB)["metadata"]["uid"] == job["metadata"]["uid"]
    assert len(kubectl("get", "jobs", "-o", "name").stdout.split()) == 1
    events = get(kubectl, "events", "--field-selector", "involvedObject.name=qwen7b-pool")["items"]
    assert [e["reason"] for e in events].count("Created") == 1

    assert "finalizers" not in get(kubectl, "gradingrun", "qwen7b-pool")["metadata"]
    operator.stop()  # deleting must not need the operator: no finalizer, children owned
    kubectl("delete", "gradingrun", "qwen7b-pool", "--timeout=30s")
    until("garbage collection of the Job and ConfigMap",
          lambda: all(kubectl("get", k, JOB, check=False).returncode != 0 for k in ("job", "configmap")),
          operator)  # fmt: skip
    kept = get(kubectl, "pvc", JOB)
    assert not kept["metadata"].get("ownerReferences")  # Retain: never owned, garbage collection keeps it


def test_a_stage_whose_pods_are_refused_says_why(
    cluster: tuple[Any, Operator], kube_api: Any, tmp_path: Path
) -> None:
    kubectl, operator = cluster
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"},
             "spec": {"hard": {"pods": "0"}}}  # fmt: skip
    kubectl("apply", "-n", "default", "-f", "-", input=json.dumps(quota))
    run = sample("GradingRun", "qwen7b-pool")
    run["metadata"] = {"name": "qwen7b-pool", "namespace": "default"}
    selector = "app.kubernetes.io/managed-by=adacot"
    with LocalKubelet(kube_api.kubeconfig, tmp_path / "node", label_selector=selector, grace_s=5):
        kubectl("apply", "-f", "-", input=json.dumps(run))

        def refused() -> dict[str, Any] | None:
            conditions = get(kubectl, "gradingrun", "qwen7b-pool")["status"]["conditions"]
            running = next(c for c in conditions if c["type"] == "Running")
            return running if running["reason"] == "FailedCreate" else None

        running = until("Running False, reason FailedCreate", refused, operator)
    assert running["status"] == "False"
    assert "exceeded quota: no-pods" in running["message"] and "limited: pods=0" in running["message"]
    assert get(kubectl, "gradingrun", "qwen7b-pool")["status"]["phase"] != "Failed"  # quota may free up


def test_two_replicas_elect_one_leader_and_the_follower_takes_over(kube_api: Any, tmp_path: Path) -> None:
    kubectl = make_kubectl(kube_api)
    kubectl("apply", "-f", str(REPO / "crds"))
    election = {"ADACOT_LEADER_ELECTION_NAMESPACE": "default", "ADACOT_LEADER_LEASE_SECONDS": "3"}
    replicas = [Operator(Path(kube_api.kubeconfig), tmp_path / f"{n}.log", election) for n in "ab"]
    for replica in replicas:
        replica.start()
    try:
        lease = until("a Lease holder", lambda: get(kubectl, "lease", "adacot-operator"), replicas[0])
        holder = lease["spec"]["holderIdentity"]
        leader, follower = sorted(replicas, key=lambda r: not holder.endswith(f"-{r.process.pid}"))  # type: ignore[union-attr]
        assert holder.endswith(f"-{leader.process.pid}")  # type: ignore[union-attr]

        def apply(name: str) -> None:
            run = sample("GradingRun", "qwen7b-pool")
            run["metadata"] = {"name": name, "namespace": "default"}
            kubectl("apply", "-f", "-", input=json.dumps(run))

        apply("first")
        until("the first Job", lambda: get(kubectl, "job", child_name("GradingRun", "first")), leader)
        until("the follower's metrics", lambda: follower.get(follower.metrics, "/metrics"), follower)
        assert 'adacot_reconcile_total{kind="GradingRun"' not in follower.get(follower.metrics, "/metrics")

        leader.stop(signal.SIGKILL)
        apply("second")
        until("the second Job, from the new leader",
              lambda: get(kubectl, "job", child_name("GradingRun", "second")), follower)  # fmt: skip
        taken = get(kubectl, "lease", "adacot-operator")["spec"]
        assert taken["holderIdentity"].endswith(f"-{follower.process.pid}")  # type: ignore[union-attr]
        assert taken["leaseTransitions"] == 1
        jobs = kubectl("get", "jobs", "-o", "name").stdout.split()
        assert sorted(jobs) == sorted(f"job.batch/{child_name('GradingRun', n)}" for n in ("first", "second"))
    finally:
        for replica in replicas:
            replica.stop()


def test_an_edit_of_how_the_stage_runs_restarts_its_job(cluster: tuple[Any, Operator]) -> None:
    """`spec.image` changes what the pod does: the unfinished Job is replaced by one from the new spec
    (and a SpecChanged event says so); an immutable field is refused by the API server instead."""
    kubectl, operator = cluster
    run = sample("GradingRun", "qwen7b-pool")
    run["metadata"] = {"name": "qwen7b-pool", "namespace": "default"}
    kubectl("apply", "-f", "-", input=json.dumps(run))
    first = until("the Job", lambda: get(kubectl, "job", JOB), operator)
    status = lambda: get(kubectl, "gradingrun", "qwen7b-pool")["status"]  # noqa: E731
    until("observedGeneration 1", lambda: status().get("observedGeneration") == 1, operator)
    image = "ghcr.io/adacot/worker:x2"  # in the default podPolicy.allowedImages (ghcr.io/adacot/*)
    edit = json.dumps({"spec": {"image": image}})
    kubectl("patch", "gradingrun", "qwen7b-pool", "--type=merge", "-p", edit)

    def replaced() -> dict[str, Any] | None:
        job = get(kubectl, "job", JOB)
        return job if job["metadata"]["uid"] != first["metadata"]["uid"] else None

    second = until("a Job from the new spec", replaced, operator)
    assert {c["image"] for c in second["spec"]["template"]["spec"]["containers"]} == {image}
    events = get(kubectl, "events", "--field-selector", "involvedObject.name=qwen7b-pool")["items"]
    assert "SpecChanged" in [e["reason"] for e in events]
    refused = kubectl("patch", "gradingrun", "qwen7b-pool", "--type=merge", "-p",
                      '{"spec": {"questions": {"path": "other.jsonl"}}}', check=False)  # fmt: skip
    assert refused.returncode != 0 and "immutable" in refused.stderr
