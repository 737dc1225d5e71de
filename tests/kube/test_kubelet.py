"""The local Job runner against the API emulator, driven and observed with the real kubectl.

Hand-written Jobs running `python -c` programs: an Indexed Job (env from value / Secret / ConfigMap /
fieldRef, JOB_COMPLETION_INDEX, a ConfigMap file volume and a PVC with subPath at their real
mountPaths, the termination message into pod status), failure with retries up to backoffLimit and the
log fallback, suspend (pods deleted, processes killed) and resume, activeDeadlineSeconds, a pod waiting
for a missing Secret, a deleted Job's process killed (with the processes that left its session: the
pod's PID namespace), pods beyond the node's `max_running` slots left Pending, and the pods of a
headless Service resolving each other's `<hostname>.<subdomain>` names.
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .fixtures import KubeApi, make_kubectl
from .kubelet import LocalKubelet

pytestmark = pytest.mark.integration
NS = "default"


@pytest.fixture
def kubelet(kube_api: KubeApi, tmp_path: Path) -> Iterator[LocalKubelet]:
    with LocalKubelet(kube_api.kubeconfig, tmp_path / "node", max_running=2, grace_s=2) as running:
        yield running


def kubectl(kube_api: KubeApi, *args: str, stdin: str | None = None) -> str:
    return make_kubectl(kube_api)("-n", NS, *args, input=stdin, timeout=120).stdout


def apply(kube_api: KubeApi, *objects: dict[str, Any]) -> None:
    kubectl(kube_api, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def get(kube_api: KubeApi, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl(kube_api, "get", kind, name, "-o", "json"))  # type: ignore[no-any-return]


def wait(kube_api: KubeApi, target: str, condition: str, timeout: int = 90) -> None:
    kubectl(kube_api, "wait", *target.split(), f"--for={condition}", f"--timeout={timeout}s")


def job(name: str, program: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "adacot-worker",
        "command": ["python", "-c", textwrap.dedent(program)],
    }
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container], **spec.pop("pod", {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
                     **spec}}  # fmt: skip


def pods(kube_api: KubeApi, job_name: str) -> list[dict[str, Any]]:
    listing = json.loads(kubectl(kube_api, "get", "pods", "-l", f"job-name={job_name}", "-o", "json"))
    return sorted(listing["items"], key=lambda p: p["metadata"]["name"])


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]  # type: ignore[no-any-return]


INDEXED = """
    import json, os, pathlib
    index = os.environ["JOB_COMPLETION_INDEX"]
    seen = {k: os.environ.get(k) for k in ("PLAIN", "FROM_SECRET", "FROM_CM", "POD_NAME")}
    seen["conf"] = pathlib.Path("/etc/demo/conf.txt").read_text()
    pathlib.Path(f"/mnt/demo/out/{index}.json").write_text(json.dumps(seen))
    pathlib.Path(os.environ["ADACOT_TERMINATION_LOG"]).write_text(json.dumps({"index": index}))
"""


def test_indexed_job_env_volumes_index_and_termination_message(
    kube_api: KubeApi, kubelet: LocalKubelet, tmp_path: Path
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
              "data": {"token": base64.b64encode(b"s3cr3t").decode()}}  # fmt: skip
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": NS},
              "data": {"conf.txt": "hello from a configmap", "mode": "fast"}}  # fmt: skip
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "work", "namespace": NS},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    env = [{"name": "PLAIN", "value": "plain"},
           {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
           {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]  # fmt: skip
    mounts = [{"name": "conf", "mountPath": "/etc/demo", "readOnly": True},
              {"name": "work", "mountPath": "/mnt/demo/out", "subPath": "run-1"}]  # fmt: skip
    items = [{"key": "conf.txt", "path": "conf.txt"}]
    volumes = [{"name": "conf", "configMap": {"name": "conf", "items": items}},
               {"name": "work", "persistentVolumeClaim": {"claimName": "work"}}]  # fmt: skip
    indexed = job("indexed", INDEXED, completionMode="Indexed", completions=2, parallelism=2,
                  container={"env": env, "volumeMounts": mounts}, pod={"volumes": volumes})  # fmt: skip
    apply(kube_api, secret, config, claim, indexed)
    wait(kube_api, "job/indexed", "condition=Complete")

    status = get(kube_api, "job", "indexed")["status"]
    assert (status["succeeded"], status["failed"], status["active"]) == (2, 0, 0)
    assert status["completedIndexes"] == "0-1" and status["completionTime"] >= status["startTime"]
    uid = get(kube_api, "job", "indexed")["metadata"]["uid"]
    written = tmp_path / "node" / "pvc" / "work" / "run-1"
    for index, pod in enumerate(pods(kube_api, "indexed")):
        labels = pod["metadata"]["labels"]
        assert pod["metadata"]["name"].startswith(f"indexed-{index}-")
        assert labels["batch.kubernetes.io/job-completion-index"] == str(index) and labels["app"] == "indexed"
        assert labels["controller-uid"] == uid
        assert pod["metadata"]["ownerReferences"][0] | {"uid": uid} == {
            "apiVersion": "batch/v1", "kind": "Job", "name": "indexed", "uid": uid,
            "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        assert pod["status"]["phase"] == "Succeeded"
        assert terminated(pod) | {"startedAt": 0, "finishedAt": 0} == {
            "exitCode": 0, "reason": "Completed", "message": json.dumps({"index": str(index)}),
            "startedAt": 0, "finishedAt": 0}  # fmt: skip
        assert json.loads((written / f"{index}.json").read_text()) == {
            "PLAIN": "plain", "FROM_SECRET": "s3cr3t", "FROM_CM": "fast",
            "POD_NAME": pod["metadata"]["name"], "conf": "hello from a configmap"}  # fmt: skip
    assert not Path("/etc/demo").exists() and not Path("/mnt/demo").exists()  # mounts stayed in the pod


def test_failures_retry_up_to_the_backoff_limit_with_the_log_as_message(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    program = "import sys; print('loading the model failed: no such file'); sys.exit(3)"
    apply(kube_api, job("crash", program, backoffLimit=1,
                        container={"terminationMessagePolicy": "FallbackToLogsOnError"}))  # fmt: skip
    wait(kube_api, "job/crash", "condition=Failed")
    status = get(kube_api, "job", "crash")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
    assert (status["failed"], status.get("succeeded", 0), status["active"]) == (2, 0, 0)
    crashed = pods(kube_api, "crash")
    assert len(crashed) == 2 and {p["status"]["phase"] for p in crashed} == {"Failed"}
    for pod in crashed:
        assert terminated(pod)["exitCode"] == 3 and terminated(pod)["reason"] == "Error"
        assert terminated(pod)["message"] == "loading the model failed: no such file"


def test_suspend_kills_the_process_and_resume_runs_it_again(
    kube_api: KubeApi, kubelet: LocalKubelet, tmp_path: Path
) -> None:
    started = tmp_path / "starts"
    gate = tmp_path / "gate"
    program = f"""
        import os, pathlib, time
        with open({str(started)!r}, "a") as f:
            f.write(str(os.getpid()) + "\\n")
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.05)
    """
    apply(kube_api, job("pausable", program))
    wait(kube_api, "job/pausable", "jsonpath={.status.ready}=1")
    kubectl(kube_api, "patch", "job", "pausable", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait(kube_api, "job/pausable", "condition=Suspended")
    assert pods(kube_api, "pausable") == []  # deleted before the Job was marked Suspended
    assert len(started.read_text().split()) == 1
    (first,) = kubelet.pods_of("pausable")
    assert first.process is not None and first.process.poll() is not None  # killed with the pod
    assert get(kube_api, "job", "pausable")["status"]["active"] == 0

    kubectl(kube_api, "patch", "job", "pausable", "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait(kube_api, "job/pausable", "jsonpath={.status.ready}=1")
    gate.touch()
    wait(kube_api, "job/pausable", "condition=Complete")
    assert len(started.read_text().split()) == 2  # it ran again from the start after the resume
    suspended = next(
        c for c in get(kube_api, "job", "pausable")["status"]["conditions"] if c["type"] == "Suspended"
    )
    assert (suspended["status"], suspended["reason"]) == ("False", "JobResumed")


def test_active_deadline_fails_the_job(kube_api: KubeApi, kubelet: LocalKubelet) -> None:
    apply(kube_api, job("slow", "import time; time.sleep(600)", activeDeadlineSeconds=2))
    wait(kube_api, "job/slow", "condition=Failed")
    failed = next(c for c in get(kube_api, "job", "slow")["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert all(run.process and run.process.poll() is not None for run in kubelet.pods_of("slow"))


def test_a_pod_waits_for_its_secret(kube_api: KubeApi, kubelet: LocalKubelet) -> None:
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]
    program = "import os, sys; sys.exit(0 if os.environ['KEY'] == 'v' else 1)"
    apply(kube_api, job("patient", program, container={"env": env}))
    waiting = "jsonpath={.status.containerStatuses[0].state.waiting.reason}=CreateContainerConfigError"
    kubectl(kube_api, "wait", "job/patient", "--for=create", "--timeout=60s")
    wait(kube_api, "pod -l job-name=patient", waiting)
    (pod,) = pods(kube_api, "patient")
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == 'secret "late" not found'
    kubectl(kube_api, "create", "secret", "generic", "late", "--from-literal=k=v")
    wait(kube_api, "job/patient", "condition=Complete")


def test_deleting_a_job_kills_its_process(kube_api: KubeApi, kubelet: LocalKubelet) -> None:
    apply(kube_api, job("doomed", "import time; time.sleep(600)"))
    wait(kube_api, "job/doomed", "jsonpath={.status.ready}=1")
    (run,) = kubelet.pods_of("doomed")
    kubectl(kube_api, "delete", "job", "doomed", "--wait=true")
    assert run.process is not None
    assert run.process.wait(timeout=30) != 0  # killed by the kubelet, not finished


def test_at_most_max_running_pods_run_at_once(kube_api: KubeApi, tmp_path: Path) -> None:
    """Three indexed pods on a one-slot node, the first held by a gate: the others stay Pending."""
    gate = tmp_path / "gate"
    program = f"""
        import pathlib, time
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.05)
    """
    with LocalKubelet(kube_api.kubeconfig, tmp_path / "node", max_running=1):
        apply(kube_api, job("queued", program, completionMode="Indexed", completions=3, parallelism=3))
        wait(kube_api, "job/queued", "jsonpath={.status.ready}=1")
        phases = sorted(p["status"].get("phase", "Pending") for p in pods(kube_api, "queued"))
        assert (phases, get(kube_api, "job", "queued")["status"]["active"]) == (
            ["Pending", "Pending", "Running"],
            3,
        )
        gate.touch()
        wait(kube_api, "job/queued", "condition=Complete")


LISTEN = """
    import os, pathlib, socket, time
    ip = os.environ["POD_IP"]
    with socket.socket() as server:
        server.bind((ip, 18471))  # the same port in every pod: each binds its own address
        server.listen()
        time.sleep(1.5)
    pathlib.Path(os.environ["ADACOT_TERMINATION_LOG"]).write_text(ip)
"""


def test_each_pod_gets_its_own_loopback_ip_through_the_downward_api(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    both = job("listen", LISTEN, completionMode="Indexed", completions=2, parallelism=2,
               container={"env": env})  # fmt: skip
    apply(kube_api, both)
    wait(kube_api, "job/listen", "condition=Complete")
    found = pods(kube_api, "listen")
    ips = [pod["status"]["podIP"] for pod in found]
    assert len(set(ips)) == 2 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    assert [terminated(pod)["message"] for pod in found] == ips


PEER = """
    import os, pathlib, socket, time
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    peer = f"peers-{1 - index}.grp"
    deadline = time.monotonic() + 60
    while True:  # the peer's name appears once it has started (as in cluster DNS)
        try:
            address = socket.gethostbyname(peer)
            break
        except socket.gaierror:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    own = socket.gethostbyname(f"peers-{index}.grp.default.svc.cluster.local")
    pathlib.Path(os.environ["ADACOT_TERMINATION_LOG"]).write_text(f"{own} {address}")
"""


def test_pods_of_a_headless_service_resolve_each_other_by_hostname(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    headless = {"clusterIP": "None", "selector": {"app": "peers"}, "ports": [{"port": 29500}]}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grp", "namespace": NS},
               "spec": headless}  # fmt: skip
    both = job("peers", PEER, completionMode="Indexed", completions=2, parallelism=2,
               pod={"subdomain": "grp"})  # fmt: skip
    apply(kube_api, service, both)
    wait(kube_api, "job/peers", "condition=Complete")
    found = {pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: pod
             for pod in pods(kube_api, "peers")}  # fmt: skip
    ips = {index: pod["status"]["podIP"] for index, pod in found.items()}
    assert terminated(found["0"])["message"] == f"{ips['0']} {ips['1']}"
    assert terminated(found["1"])["message"] == f"{ips['1']} {ips['0']}"


def test_without_its_service_a_subdomain_name_does_not_resolve(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    program = """
        import socket
        try:
            socket.gethostbyname("alone-0.nosvc")
        except socket.gaierror:
            raise SystemExit(0)
        raise SystemExit(3)
    """
    apply(kube_api, job("alone", program, completionMode="Indexed", completions=1, parallelism=1,
                        pod={"subdomain": "nosvc"}))  # fmt: skip
    wait(kube_api, "job/alone", "condition=Complete")


def _with_env(marker: str) -> list[int]:
    """Pids (on this machine) of processes whose environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_deleted_pod_takes_processes_that_left_its_session_with_it(
    kube_api: KubeApi, kubelet: LocalKubelet, tmp_path: Path
) -> None:
    """As torchrun's workers do (start_new_session): killing the pod's process group misses them, the
    pod's PID namespace does not."""
    ready = tmp_path / "ready"
    program = f"""
        import pathlib, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(600)
    """
    marker = f"POD_MARK_{tmp_path.name}"
    apply(kube_api, job("escapee", program, container={"env": [{"name": marker, "value": "1"}]}))
    wait(kube_api, "job/escapee", "jsonpath={.status.ready}=1")
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:  # the detached child has been started
        time.sleep(0.05)
    assert len(_with_env(marker)) >= 3  # the pod's init shell, its program, the detached child
    kubectl(kube_api, "delete", "job", "escapee", "--wait=true")
    deadline = time.monotonic() + 30
    while _with_env(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _with_env(marker) == []
