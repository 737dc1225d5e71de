"""The podman runtime's mapping of a Pod to `podman run` (tests/kube/kubelet_podman.py), as data: the
operator's own pod template (restricted securityContext, limits, emptyDirs, claims, termination message)
and the corner cases (args without command, container context over pod context, quantities)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .kubelet_podman import container_name, cpu_count, podman_argv, quantity_bytes
from .kubelet_pods import Mount, PodConfigError, PodSandbox


def operator_pod() -> dict[str, Any]:
    """A stage pod as adacot_operator.builders.job makes it (trimmed to what the mapping reads)."""
    container = {
        "name": "stage", "image": "ghcr.io/adacot/worker-cpu:0.1.0",
        "command": ["adacot", "stage", "--spec", "/etc/adacot/spec.yaml"],
        "resources": {"limits": {"cpu": "500m", "memory": "2Gi"}, "requests": {"memory": "2Gi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True},
    }  # fmt: skip
    pod_context = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                   "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    return {"metadata": {"name": "gr-pool-0-abcde", "namespace": "team-a"},
            "spec": {"containers": [container], "securityContext": pod_context}}  # fmt: skip


def sandbox(tmp_path: Path, *mounts: Mount, workdir: str = "") -> PodSandbox:
    env = {"ADACOT_OUTPUT_DIR": "/mnt/adacot/output/x", "TOKEN": "a=b c"}
    return PodSandbox(root=tmp_path, argv=[], env=env, mounts=list(mounts), workdir=workdir)


def argv(pod: dict[str, Any], box: PodSandbox, **kw: Any) -> list[str]:
    return podman_argv(pod, box, name="c", nofile=(4096, 8192), nproc=(100, 200), **kw)


def test_the_operators_stage_pod_maps_to_a_restricted_container(tmp_path: Path) -> None:
    mounts = [
        Mount(tmp_path / "v" / "spec", "/etc/adacot", True, "configMap"),
        Mount(tmp_path / "v" / "tmp", "/tmp", False, "emptyDir"),
        Mount(Path("/node/pvc/models"), "/mnt/adacot/claims/models", True, "persistentVolumeClaim"),
    ]
    got = argv(operator_pod(), sandbox(tmp_path, *mounts), pids_limit=512, labels={"k": "v"})
    assert got == [
        "podman", "run", "--rm", "--name", "c", "--pull", "never", "--network", "host",
        "--ulimit=nofile=4096:8192", "--ulimit=nproc=100:200", "--label=k=v",
        "--user=10001:10001", "--group-add=10001", "--read-only", "--read-only-tmpfs=false",
        "--cap-drop=ALL", "--security-opt=no-new-privileges",
        f"--memory={2 << 30}", "--cpus=0.5", "--pids-limit=512",
        "--env=ADACOT_OUTPUT_DIR=/mnt/adacot/output/x", "--env=TOKEN=a=b c",
        f"--volume={tmp_path}/v/tmp:/tmp",  # fewest path components first: parents before children
        f"--volume={tmp_path}/v/spec:/etc/adacot:ro",
        "--volume=/node/pvc/models:/mnt/adacot/claims/models:ro",
        f"--volume={tmp_path}/termination-log:/dev/termination-log",
        '--entrypoint=["adacot", "stage", "--spec", "/etc/adacot/spec.yaml"]',
        "ghcr.io/adacot/worker-cpu:0.1.0",
    ]  # fmt: skip


def test_args_alone_keep_the_images_entrypoint_and_the_container_context_wins(tmp_path: Path) -> None:
    pod = operator_pod()
    container = pod["spec"]["containers"][0]
    del container["command"], container["resources"]
    container.update(
        args=["grade", "--help"], terminationMessagePath="/var/run/msg", workingDir="/work",
        securityContext={"runAsUser": 2000, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]},
                         "seccompProfile": {"type": "Unconfined"}},
    )  # fmt: skip
    pod["spec"]["securityContext"] = {"runAsUser": 10001, "supplementalGroups": [5, 6]}
    hosts = Mount(tmp_path / "hosts", "/etc/hosts", True)
    got = argv(pod, sandbox(tmp_path, hosts, workdir="/work"))
    assert "--user=2000" in got and "--group-add=5" in got and "--group-add=6" in got
    assert {"--privileged", "--cap-add=NET_ADMIN", "--security-opt=seccomp=unconfined", "--no-hosts"} <= set(
        got
    )
    assert not [a for a in got if a.startswith(("--entrypoint", "--memory", "--cpus", "--read-only"))]
    assert not [a for a in got if a.startswith(("--security-opt=no-new", "--pids-limit"))]
    assert f"--volume={tmp_path}/termination-log:/var/run/msg" in got and "--workdir=/work" in got
    assert got[-3:] == ["ghcr.io/adacot/worker-cpu:0.1.0", "grade", "--help"]
    mirrored = argv(pod, sandbox(tmp_path), images={"ghcr.io/adacot/worker-cpu:0.1.0": "localhost/w:dev"})
    assert mirrored[-3:] == ["localhost/w:dev", "grade", "--help"]


def test_an_entrypoint_is_json_so_arguments_with_spaces_survive(tmp_path: Path) -> None:
    pod = operator_pod()
    pod["spec"]["containers"][0]["command"] = ["python", "-c", "print('a b')"]
    got = argv(pod, sandbox(tmp_path))
    entry = next(a for a in got if a.startswith("--entrypoint="))
    assert json.loads(entry.removeprefix("--entrypoint=")) == ["python", "-c", "print('a b')"]


def test_quantities_names_and_a_missing_image() -> None:
    assert [quantity_bytes(q) for q in ("512Mi", "1G", "1e3", 2048, "1.5Gi", "100k")] == [
        512 << 20, 10**9, 1000, 2048, 3 << 29, 100_000,
    ]  # fmt: skip
    assert [cpu_count(q) for q in ("500m", "2", 1, "0.25")] == ["0.5", "2", "1", "0.25"]
    with pytest.raises(PodConfigError):
        quantity_bytes("lots")
    assert container_name({"metadata": {"name": "p-0.x", "namespace": "ns"}}) == "k8s_ns_p-0.x"
    pod = operator_pod()
    del pod["spec"]["containers"][0]["image"]
    with pytest.raises(PodConfigError, match="no image"):
        argv(pod, sandbox(Path("/x")))
