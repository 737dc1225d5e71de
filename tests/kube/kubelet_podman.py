"""Podman runtime of the local kubelet: each pod's container runs from its image with `podman run`.

Selected with `LocalKubelet(..., runtime="podman")` or ADACOT_KUBELET_RUNTIME=podman (tests/kube/kubelet.py);
the default runtime (kubelet_pods.ProcessRuntime) runs the command as a local process instead. What is
shared stays in kubelet_pods: the container's env (value, secretKeyRef, configMapKeyRef, fieldRef,
envFrom) and every volume as a host directory (PVC -> `volume_root/pvc/<claim>`, ConfigMap/Secret ->
files, emptyDir -> a directory of the pod's). This module only turns that sandbox into podman's argv
(`podman_argv`, a pure function) and starts, stops and removes the container.

Mapping (Kubernetes -> podman):
- image -> the image, never pulled (`--pull never`: load it first, as `kind load docker-image` does); an
  image that is not there leaves the pod Pending with waiting reason ErrImageNeverPull, as a kubelet does
  with imagePullPolicy Never; command -> `--entrypoint` (JSON form; the image's CMD is dropped, as in
  Kubernetes), args -> the arguments after the image; workingDir -> `--workdir`;
- env -> `--env NAME=VALUE`, resolved by the kubelet (no image env is overridden unless the pod names it);
- volumeMounts -> `--volume HOST:PATH[:ro]`; the termination-log file -> terminationMessagePath (default
  /dev/termination-log), mode 0666 so any user writes it; emptyDir directories get mode 1777 and PVC
  directories the pod's fsGroup (group ownership, g+rwX, setgid directories), as a kubelet does;
- securityContext (container over pod) -> `--user runAsUser[:runAsGroup]`, `--group-add fsGroup` and
  supplementalGroups, readOnlyRootFilesystem -> `--read-only --read-only-tmpfs=false` (no tmpfs /tmp:
  only the pod's emptyDirs are writable, as in a pod), capabilities drop/add -> `--cap-drop`/`--cap-add`,
  allowPrivilegeEscalation false -> `--security-opt no-new-privileges`, privileged -> `--privileged`,
  seccompProfile Unconfined -> `--security-opt seccomp=unconfined` (RuntimeDefault: podman's default);
- resources.limits: memory -> `--memory`, cpu -> `--cpus`; the node's pod PID limit (kubelet
  podPidsLimit) -> `--pids-limit` when the kubelet is given one; RLIMIT_NOFILE and RLIMIT_NPROC
  explicitly (`--ulimit`: a host without CAP_SYS_RESOURCE cannot grant the runtime's defaults);
- network: always `--network host`. Pods must reach the API emulator, the operator's progress reads and
  test servers on this machine's loopback, and each pod's own IP (status.podIP, 127.x.y.z) is a loopback
  address; NetworkPolicies are stored by the emulator, not enforced (an egress "none" policy also leaves
  the operator's ingress to the progress port open, which `--network none` would cut). /etc/hosts is
  podman's unless the pod has a subdomain (then the kubelet's hosts file, `--no-hosts`).
- exit code: `podman run` (attached, `--rm`) exits with the container's code (128+N after signal N);
  125-127 are podman's own failures and fail the pod like any non-zero code. Logs: the container's
  stdout and stderr go to the pod's container.log, as in process mode. Deleting the pod: `podman stop
  --time <grace>` (SIGTERM, then SIGKILL), then `podman rm --force`.

Image substitution: $ADACOT_KUBELET_IMAGES, a JSON object {"image in the pod": "local image"}, runs a
pod's image as another one (as a node's registry mirror would), to try a patched image without retagging.

Limits: one container, no init containers, no image pulls, no GPU resources (requests for them are
ignored), no hostname/UTS namespace of the pod's own; runAsNonRoot is not checked against the image's user.
Global podman settings come from CONTAINERS_CONF (default: images/containers.conf of this repository,
when present: runc and cgroupfs, which this machine's hybrid cgroups need).
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .kubelet_pods import Mount, PodConfigError, PodSandbox

PODMAN = "podman"
REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "images" / "containers.conf"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
IMAGES_ENV = "ADACOT_KUBELET_IMAGES"
NPROC_CAP = 32768
"""RLIMIT_NPROC given to containers (at most this machine's): runc here refuses the host's own value."""
_BINARY = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


def quantity_bytes(value: str | int | float) -> int:
    """A Kubernetes quantity (`512Mi`, `1G`, `1e9`, `2048`) in bytes, rounded up."""
    text = str(value).strip()
    match = re.fullmatch(r"([0-9.eE+-]+?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?", text)
    if not match:
        raise PodConfigError("CreateContainerConfigError", f"quantity {value!r} not understood")
    number, suffix = float(match.group(1)), match.group(2) or ""
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return int(-(-number * factor // 1))


def cpu_count(value: str | int | float) -> str:
    """A CPU quantity (`500m`, `2`) as podman's --cpus (a decimal number of CPUs)."""
    text = str(value).strip()
    cpus = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return f"{cpus:g}"


def security(pod: dict[str, Any]) -> dict[str, Any]:
    """The effective security settings: the container's securityContext over the pod's."""
    pod_context = pod["spec"].get("securityContext") or {}
    container_context = pod["spec"]["containers"][0].get("securityContext") or {}
    shared = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    return {**{k: pod_context[k] for k in shared if k in pod_context}, **container_context,
            "fsGroup": pod_context.get("fsGroup"),
            "supplementalGroups": pod_context.get("supplementalGroups") or []}  # fmt: skip


def podman_argv(
    pod: dict[str, Any], sandbox: PodSandbox, *, name: str, nofile: tuple[int, int],
    nproc: tuple[int, int], pids_limit: int | None = None, labels: dict[str, str] | None = None,
    images: dict[str, str] | None = None,
) -> list[str]:  # fmt: skip
    """`podman run ...` for the pod's single container (see the module docstring for the mapping)."""
    container = pod["spec"]["containers"][0]
    argv = [PODMAN, "run", "--rm", "--name", name, "--pull", "never", "--network", "host"]
    argv += [f"--ulimit=nofile={nofile[0]}:{nofile[1]}", f"--ulimit=nproc={nproc[0]}:{nproc[1]}"]
    for key, value in sorted((labels or {}).items()):
        argv.append(f"--label={key}={value}")
    context = security(pod)
    if context.get("runAsUser") is not None:
        group = context.get("runAsGroup")
        argv.append(f"--user={context['runAsUser']}" + (f":{group}" if group is not None else ""))
    for group in [context["fsGroup"], *context["supplementalGroups"]]:
        if group is not None:
            argv.append(f"--group-add={group}")
    if context.get("readOnlyRootFilesystem"):
        argv += ["--read-only", "--read-only-tmpfs=false"]
    capabilities = context.get("capabilities") or {}
    argv += [f"--cap-drop={c}" for c in capabilities.get("drop") or []]
    argv += [f"--cap-add={c}" for c in capabilities.get("add") or []]
    if context.get("allowPrivilegeEscalation") is False:
        argv.append("--security-opt=no-new-privileges")
    if context.get("privileged"):
        argv.append("--privileged")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        argv.append("--security-opt=seccomp=unconfined")
    limits = (container.get("resources") or {}).get("limits") or {}
    if "memory" in limits:
        argv.append(f"--memory={quantity_bytes(limits['memory'])}")
    if "cpu" in limits:
        argv.append(f"--cpus={cpu_count(limits['cpu'])}")
    if pids_limit is not None:
        argv.append(f"--pids-limit={pids_limit}")
    for key, value in sandbox.env.items():
        argv.append(f"--env={key}={value}")
    mounts: Sequence[Mount] = sorted(sandbox.mounts, key=lambda m: m.target.count("/"))
    if any(m.target == "/etc/hosts" for m in mounts):
        argv.append("--no-hosts")
    for mount in mounts:
        argv.append(f"--volume={mount.source}:{mount.target}" + (":ro" if mount.read_only else ""))
    message_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    argv.append(f"--volume={sandbox.termination_log}:{message_path}")
    if sandbox.workdir:
        argv.append(f"--workdir={sandbox.workdir}")
    if container.get("command"):
        argv.append(f"--entrypoint={json.dumps(container['command'])}")
    image = container.get("image")
    if not image:
        raise PodConfigError("InvalidImageName", "container has no image")
    return [*argv, (images or {}).get(image, image), *(container.get("args") or [])]


class PodmanRuntime:
    """The kubelet's runtime for pods run from images (`LocalKubelet(..., runtime="podman")`)."""

    in_container = True

    def __init__(self, pids_limit: int | None = None) -> None:
        if shutil.which(PODMAN) is None:
            raise RuntimeError("the podman kubelet runtime needs podman on PATH")
        self.pids_limit = pids_limit
        self.instance = secrets.token_hex(4)  # labels this kubelet's containers, so `close` finds them
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        _, nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)
        cap = NPROC_CAP if nproc_hard == resource.RLIM_INFINITY else min(NPROC_CAP, nproc_hard)
        self.nofile = (hard, hard) if hard != resource.RLIM_INFINITY else (soft, soft)
        self.nproc = (cap, cap)
        self.images: dict[str, str] = json.loads(os.environ.get(IMAGES_ENV) or "{}")
        self.env = dict(os.environ)
        if "CONTAINERS_CONF" not in self.env and CONTAINERS_CONF.exists():
            self.env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PODMAN, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def spawn(self, sandbox: PodSandbox, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        image = pod["spec"]["containers"][0].get("image") or ""
        image = self.images.get(image, image)
        if image and self.podman("image", "exists", image).returncode != 0:
            raise PodConfigError("ErrImageNeverPull", f'image "{image}" is not present on this node')
        own_volumes(sandbox, security(pod).get("fsGroup"))
        meta = pod["metadata"]
        labels = {"adacot.kubelet": self.instance, "io.kubernetes.pod.name": meta["name"],
                  "io.kubernetes.pod.namespace": meta["namespace"]}  # fmt: skip
        argv = podman_argv(
            pod, sandbox, name=container_name(pod), nofile=self.nofile, nproc=self.nproc,
            pids_limit=self.pids_limit, labels=labels, images=self.images,
        )  # fmt: skip
        (sandbox.root / "podman-argv.json").write_text(json.dumps(argv, indent=1))
        with sandbox.log.open("ab") as log:
            return subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    def kill(self, process: subprocess.Popen[bytes], pod: dict[str, Any], grace_s: float) -> None:
        """SIGTERM to the container, SIGKILL after the grace period, then remove it."""
        name = container_name(pod)
        self.podman("stop", "--ignore", "--time", str(max(0, int(grace_s))), name, timeout=grace_s + 60)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # the attached client outlived its container: end it
            process.kill()
            process.wait()
        self.podman("rm", "--force", "--ignore", name)

    def close(self) -> None:
        """Remove every container this kubelet started that is still there."""
        listed = self.podman("ps", "-aq", "--filter", f"label=adacot.kubelet={self.instance}")
        for container in listed.stdout.split():
            self.podman("rm", "--force", "--time", "0", container)


def container_name(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"k8s_{meta['namespace']}_{meta['name']}")


def own_volumes(sandbox: PodSandbox, fs_group: int | None) -> None:
    """Volume ownership and modes as a kubelet sets them: the termination-log file writable by anyone,
    emptyDir directories world-writable (1777), every file of a PVC, emptyDir, ConfigMap or Secret
    volume owned by group `fs_group` with group read/write (setgid directories) when the pod sets one."""
    sandbox.termination_log.chmod(0o666)
    for mount in sandbox.mounts:
        if mount.kind == "emptyDir":
            mount.source.chmod(0o1777)
        if fs_group is None or not mount.kind or not mount.source.is_dir():
            continue
        for path in [mount.source, *mount.source.rglob("*")]:
            if path.is_symlink():
                continue
            os.chown(path, -1, fs_group)
            mode = path.stat().st_mode
            path.chmod(mode | 0o060 | (0o2010 if path.is_dir() else 0))
