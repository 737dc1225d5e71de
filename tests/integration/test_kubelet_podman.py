"""The local kubelet's podman runtime (tests/kube/kubelet_podman.py): Jobs applied with the real kubectl
run as containers of the worker-cpu image.

- a pod with the operator's restricted securityContext, a memory limit, env from a Secret, a ConfigMap
  and the downward API, a ConfigMap file volume, a PVC and emptyDirs: inside the container it runs as
  uid 10001 with the fsGroup, no capabilities, no_new_privs, a read-only root, the memory limit in its
  cgroup, writes to the PVC and /tmp; its exit code and /dev/termination-log reach the pod's status;
- deleting a running Job stops and removes its container;
- an image that is not on the node leaves the pod Pending with ErrImageNeverPull;
- the operator's GradingRun -> DifficultyBank chain applied with `kubectl apply -f`, each stage's Job run
  in the worker-cpu image (the stage's model and questions on claims mounted from host directories, the
  teacher endpoint a local server reached over the host network), both Complete with their artifacts.

Skipped only when podman or the worker-cpu image is missing (`make test` installs podman and builds the
image first). The image: $ADACOT_TEST_WORKER_IMAGE, else localhost/adacot/worker-cpu:dev (`make images`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fault_server import FaultServer
from kube.fixtures import KubeApi, make_kubectl
from kube.kubelet import LocalKubelet
from kube.kubelet_podman import CONTAINERS_CONF, PodmanRuntime
from operator_e2e_helpers import Kubectl, Operator, claim, doc, dump, fill_claims, grading_spec
from shared_data import needs_shared_data
from test_runner import math500

from adacot.artifacts import verify_artifact

pytestmark = pytest.mark.integration
NS = "default"
IMAGE = os.environ.get("ADACOT_TEST_WORKER_IMAGE") or "localhost/adacot/worker-cpu:dev"
REPO = Path(__file__).resolve().parents[2]


def image_present(image: str) -> bool:
    if shutil.which("podman") is None:
        return False
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
    return subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode == 0


needs_image = pytest.mark.skipif(not image_present(IMAGE), reason=f"podman or the image {IMAGE} is missing")


@pytest.fixture
def kubelet(kube_api: KubeApi, tmp_path: Path) -> Iterator[LocalKubelet]:
    with LocalKubelet(
        kube_api.kubeconfig, tmp_path / "node", max_running=2, grace_s=2, runtime="podman", pids_limit=4096
    ) as running:
        yield running


def kubectl(kube_api: KubeApi, *args: str, stdin: str | None = None) -> str:
    return make_kubectl(kube_api)("-n", NS, *args, input=stdin, timeout=300).stdout


def get(kube_api: KubeApi, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl(kube_api, "get", kind, name, "-o", "json"))  # type: ignore[no-any-return]


def pods(kube_api: KubeApi, job: str) -> list[dict[str, Any]]:
    return json.loads(kubectl(kube_api, "get", "pods", "-l", f"job-name={job}", "-o", "json"))["items"]  # type: ignore[no-any-return]


def job(name: str, container: dict[str, Any], pod: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": IMAGE, **container}],
        **(pod or {}),
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
            "spec": {"backoffLimit": 0, "template": {"spec": spec}}}  # fmt: skip


PROBE = """
    import json, os, pathlib, sys
    status = dict(l.split(":\\t", 1) for l in pathlib.Path("/proc/self/status").read_text().splitlines())
    cg = [pathlib.Path("/sys/fs/cgroup", p) for p in ("memory.max", "memory/memory.limit_in_bytes")]
    try:
        pathlib.Path("/usr/local/written").write_text("x")
        root_writable = True
    except OSError:
        root_writable = False
    pathlib.Path("/tmp/scratch").write_text("tmp is writable")
    out = pathlib.Path("/mnt/out/result.json")
    out.write_text(json.dumps({
        "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
        "memory": next((p.read_text().strip() for p in cg if p.exists()), None),
        "root_writable": root_writable, "env": {k: os.environ.get(k) for k in ("SECRET", "MODE", "POD")},
        "conf": pathlib.Path("/etc/probe/conf.txt").read_text(),
    }))
    pathlib.Path("/dev/termination-log").write_text("probe done")
    print("probe wrote", out)
    sys.exit(3)
"""


@needs_image
def test_a_restricted_pod_runs_in_the_image_with_its_env_volumes_limits_and_termination_message(
    kube_api: KubeApi, kubelet: LocalKubelet, tmp_path: Path
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
              "data": {"token": base64.b64encode(b"s3cr3t").decode()}}  # fmt: skip
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": NS},
              "data": {"conf.txt": "from a configmap", "mode": "fast"}}  # fmt: skip
    out = claim("out")
    env = [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
           {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]  # fmt: skip
    mounts = [{"name": "conf", "mountPath": "/etc/probe", "readOnly": True},
              {"name": "out", "mountPath": "/mnt/out"}, {"name": "tmp", "mountPath": "/tmp"}]  # fmt: skip
    volumes = [{"name": "conf", "configMap": {"name": "conf"}}, {"name": "tmp", "emptyDir": {}},
               {"name": "out", "persistentVolumeClaim": {"claimName": "out"}}]  # fmt: skip
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True, "runAsNonRoot": True}  # fmt: skip
    container = {"command": ["python", "-c", textwrap.dedent(PROBE)], "env": env, "volumeMounts": mounts,
                 "securityContext": security, "resources": {"limits": {"memory": "256Mi"}}}  # fmt: skip
    pod = {"volumes": volumes, "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}}
    kubectl(
        kube_api,
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump_all([secret, config, out, job("probe", container, pod)]),
    )
    kubectl(kube_api, "wait", "job/probe", "--for=condition=Failed", "--timeout=120s")

    [failed] = pods(kube_api, "probe")
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (failed["status"]["phase"], terminated["exitCode"], terminated["message"]) == (
        "Failed",
        3,
        "probe done",
    )
    seen = json.loads((tmp_path / "node" / "pvc" / "out" / "result.json").read_text())
    assert (seen["uid"], seen["gid"], 10001 in seen["groups"]) == (10001, 10001, True)
    assert (seen["cap_eff"], seen["no_new_privs"], seen["root_writable"]) == ("0000000000000000", "1", False)
    assert seen["memory"] == str(256 << 20)
    assert seen["env"] == {"SECRET": "s3cr3t", "MODE": "fast", "POD": failed["metadata"]["name"]}
    assert seen["conf"] == "from a configmap"
    assert "probe wrote /mnt/out/result.json" in kubelet.log_of(failed["metadata"]["name"])


@needs_image
def test_deleting_a_running_job_stops_and_removes_its_container(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    program = "import pathlib, time; pathlib.Path('/dev/termination-log').write_text('up'); time.sleep(600)"
    kubectl(
        kube_api, "apply", "-f", "-", stdin=json.dumps(job("sleeper", {"command": ["python", "-c", program]}))
    )
    kubectl(
        kube_api,
        "wait",
        "pod",
        "-l",
        "job-name=sleeper",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=120s",
    )
    [pod] = pods(kube_api, "sleeper")
    [run] = kubelet.pods_of("sleeper")
    name = f"k8s_{NS}_{pod['metadata']['name']}"
    runtime = kubelet.runtime
    assert isinstance(runtime, PodmanRuntime)

    def listed() -> list[str]:
        return runtime.podman("ps", "-a", "--format", "{{.Names}}").stdout.split()

    assert run.sandbox is not None
    deadline = time.monotonic() + 60  # the pod is Running once `podman run` starts; its program a bit later
    while run.sandbox.termination_log.read_text() != "up" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.sandbox.termination_log.read_text() == "up" and name in listed()
    kubectl(kube_api, "delete", "job", "sleeper", "--wait=false")
    assert run.process is not None
    run.process.wait(timeout=60)  # the kubelet's kill: podman stop, then rm
    kubectl(kube_api, "wait", "pod", "-l", "job-name=sleeper", "--for=delete", "--timeout=60s")
    assert name not in listed()


@needs_image
def test_an_image_missing_from_the_node_leaves_the_pod_pending(
    kube_api: KubeApi, kubelet: LocalKubelet
) -> None:
    missing = job("nowhere", {"image": "registry.invalid/nothing:1", "command": ["true"]})
    kubectl(kube_api, "apply", "-f", "-", stdin=json.dumps(missing))
    kubectl(kube_api, "wait", "pod", "-l", "job-name=nowhere",
            "--for=jsonpath={.status.containerStatuses[0].state.waiting.reason}=ErrImageNeverPull",
            "--timeout=60s")  # fmt: skip
    [pod] = pods(kube_api, "nowhere")
    assert pod["status"]["phase"] == "Pending"


OFFLINE_ENV = (
    '[{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TOKENIZERS_PARALLELISM", "value": "false"}]'
)
MANAGED = "app.kubernetes.io/managed-by=adacot"


@needs_image
@needs_shared_data
def test_the_operators_grading_chain_runs_in_the_worker_image(
    kube_api: KubeApi, tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GradingRun -> DifficultyBank applied with kubectl; the operator's Jobs run as worker-cpu containers
    (restricted securityContext, read-only root, the claims as host directories); the grading stage asks
    a local OpenAI-compatible server over the host network."""
    kubectl = Kubectl(kube_api)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([claim("models"), claim("datasets")]))
    rows = math500(4)
    volume_root = tmp_path / "node"
    fill_claims(volume_root, tiny_lm, rows)
    monkeypatch.setenv("ADACOT_WORKER_IMAGE", IMAGE)
    monkeypatch.setenv("ADACOT_WORKER_EXTRA_ENV", OFFLINE_ENV)
    operator = Operator(Path(kube_api.kubeconfig), tmp_path / "operator.log")
    with (
        FaultServer() as teacher,
        LocalKubelet(kube_api.kubeconfig, volume_root, label_selector=MANAGED, runtime="podman") as kubelet,
    ):
        operator.start()
        try:
            docs = [doc("GradingRun", "pool", grading_spec(teacher.url, "tiny", "bank")),
                    doc("DifficultyBank", "bank", {"backoffLimit": 0})]  # fmt: skip
            kubectl("apply", "-f", str(dump(docs, tmp_path / "chain.yaml")))
            kubectl.wait("gradingrun/pool", "condition=Complete", 300)
            kubectl.wait("difficultybank/bank", "jsonpath={.status.phase}=Ready", 300)
        except AssertionError as error:
            logs = "\n".join(kubelet.log_of(r.name)[-2000:] for r in kubelet.pods.values())
            raise AssertionError(f"{error}\noperator log:\n{operator.tail(30)}\npods:\n{logs}") from None
        finally:
            operator.stop()
        runs = list(kubelet.pods.values())
    assert sorted(r.job[1] for r in runs) == sorted(
        j["metadata"]["name"] for j in kubectl.items("jobs", "-l", MANAGED)
    )
    for run in runs:  # each stage ran once, as a container of the image, under the restricted profile
        assert run.phase == "Succeeded" and run.sandbox is not None
        argv = json.loads((run.sandbox.root / "podman-argv.json").read_text())
        assert IMAGE in argv
        assert {
            "--user=10001:10001",
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
        } <= set(argv)
    asked = {hit.prompt for hit in teacher.hits}
    assert all(any(row["problem"] in prompt for prompt in asked) for row in rows), asked
    for kind, name in (("gradingrun", "pool"), ("difficultybank", "bank")):
        output = kubectl.get(kind, name)["status"]["output"]
        verify_artifact(volume_root / "pvc" / output["claim"] / output["path"])
