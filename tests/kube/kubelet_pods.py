"""Pod runtime of the local Job runner: turns one Pod object into one local process.

Owns what a kubelet and a container runtime do for a single-container pod: resolve the container's env
(value, secretKeyRef, configMapKeyRef, fieldRef, envFrom) against the API, materialise every volume as a
local directory (PVC -> `volume_root/pvc/<claim>`, ConfigMap/Secret -> files, emptyDir -> temp dir),
and start the container command in a private mount namespace (`unshare -rm`) where each volume is
bind-mounted at its real mountPath, so /etc/adacot/spec.yaml and /mnt/adacot/... are where the pod
expects them. Called by tests/kube/kubelet.py (the controller loop) only.

Limits: no image (the command runs with this machine's filesystem and the venv's `adacot`, `python`,
`torchrun` first on PATH); a missing mountPath is created by an overlay on its nearest existing ancestor
(never `/`, nor an ancestor of the volume root; a tmpfs where the overlay fails, hiding that ancestor's
content from the pod); the termination message goes to $ADACOT_TERMINATION_LOG (a file outside the pod;
/dev/termination-log cannot be created without a device filesystem); no network namespace (each pod's IP
is a loopback address of its own, 127.x.y.z, the one status.podIP reports; pod DNS only for a subdomain's
pods, through a bind-mounted /etc/hosts written by the kubelet), a PID namespace with its own /proc where
this machine allows one, no resource limits, no securityContext (the process runs as this user), one
container, no init containers; an emptyDir mounted at /tmp is not mounted (the pod's own directories, its
termination log included, live under this machine's /tmp, which an empty /tmp would hide): the pod writes
to the shared /tmp.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

#: Kubernetes keeps at most this much of a termination message, and of the log fallback.
TERMINATION_LIMIT = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048
VENV_BIN = Path(sys.executable).parent


class Rest:
    """JSON-in, JSON-out calls through the kubernetes python client's transport (kubeconfig auth, TLS).

    The typed client models would drop fields they do not know; the kubelet works on plain dicts."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @property
    def url(self) -> str:
        return str(self.api.configuration.host)

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:  # fmt: skip
        response = self._send(method, path, body, query, content_type)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(status=response.status, reason=response.data.decode(errors="replace"))
        return json.loads(response.data or b"{}")  # type: ignore[no-any-return]

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", path)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> None:
        try:
            self.call("DELETE", path)
        except ApiException as error:
            if error.status != 404:
                raise

    def watch_lines(self, path: str, query: dict[str, Any], timeout_s: float) -> Any:
        """The raw response of a watch request (an iterable of JSON lines)."""
        query = {**query, "watch": "true", "timeoutSeconds": int(timeout_s)}
        response = self._send("GET", path, None, query, "application/json", timeout=timeout_s + 5)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(status=response.status, reason=response.data.decode(errors="replace"))
        return response.response

    def _send(
        self, method: str, path: str, body: Any, query: dict[str, Any] | None, content_type: str,
        timeout: float | None = 30,
    ) -> Any:  # fmt: skip
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        return self.api.call_api(*request, _request_timeout=timeout)


class PodConfigError(Exception):
    """The pod cannot start yet (a missing Secret, ConfigMap or claim): it stays Pending, as on a node."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Mount:
    source: Path
    target: str
    read_only: bool
    kind: str = ""
    """The volume's type (persistentVolumeClaim, emptyDir, configMap, secret; "" for the kubelet's own
    files): a container runtime sets ownership and modes by it (tests/kube/kubelet_podman.py)."""


@dataclass
class PodSandbox:
    """Everything prepared for one pod: the directory it owns, its mounts, env and argv."""

    root: Path
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    workdir: str = "/"
    """The directory the command starts in; in a container "" means the image's WORKDIR."""

    @property
    def termination_log(self) -> Path:
        return self.root / "termination-log"

    @property
    def log(self) -> Path:
        return self.root / "container.log"


def prepare(
    rest: Rest,
    pod: dict[str, Any],
    volume_root: Path,
    base_env: dict[str, str],
    *,
    in_container: bool = False,
) -> PodSandbox:
    """Resolve the pod's single container into a sandbox; raises PodConfigError while inputs are missing.

    `in_container`: for a runtime that gives the pod a filesystem of its own (an image): the command may
    be empty (the image's entrypoint), an emptyDir at /tmp is mounted, and the env is the container's
    alone (no HOME or termination-log path of this machine's)."""
    spec, meta = pod["spec"], pod["metadata"]
    containers = spec.get("containers") or []
    if len(containers) != 1 or spec.get("initContainers"):
        raise PodConfigError("CreateContainerError", "the local kubelet runs exactly one container")
    container = containers[0]
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv and not in_container:
        raise PodConfigError("CreateContainerError", "container has no command (no image entrypoint here)")
    root = volume_root / "pods" / meta["namespace"] / meta["name"]
    root.mkdir(parents=True, exist_ok=True)
    workdir = container.get("workingDir") or ("" if in_container else str(root))
    sandbox = PodSandbox(root=root, argv=argv, env={}, workdir=workdir)
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise PodConfigError("CreateContainerConfigError", f"volume {mount['name']!r} not found")
        volume = volumes[mount["name"]]
        if mount["mountPath"] == "/tmp" and "emptyDir" in volume and not in_container:
            continue  # this machine's /tmp holds the pod's own directories (see the module docstring)
        source = _volume_dir(rest, meta["namespace"], volume, volume_root, root)
        if mount.get("subPath"):
            source = source / mount["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        kind = next((k for k in VOLUME_KINDS if k in volume), "")
        sandbox.mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly")), kind))
    sandbox.env = {**base_env, **_container_env(rest, pod, container)}
    if not in_container:
        sandbox.env |= {"HOME": str(root / "home"), "ADACOT_TERMINATION_LOG": str(sandbox.termination_log)}
        (root / "home").mkdir(exist_ok=True)
    sandbox.termination_log.write_text("")
    return sandbox


VOLUME_KINDS = ("persistentVolumeClaim", "configMap", "secret", "emptyDir")


def _volume_dir(
    rest: Rest, namespace: str, volume: dict[str, Any], volume_root: Path, pod_root: Path
) -> Path:
    """The local directory standing for one pod volume (created or refreshed now)."""
    path: Path
    if "persistentVolumeClaim" in volume:
        claim = str(volume["persistentVolumeClaim"]["claimName"])
        if rest.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}") is None:
            raise PodConfigError("Unschedulable", f'persistentvolumeclaim "{claim}" not found')
        path = volume_root / "pvc" / claim
    elif "configMap" in volume or "secret" in volume:
        kind = "configMap" if "configMap" in volume else "secret"
        source = volume[kind]
        name = source.get("name") or source.get("secretName")
        path = pod_root / "volumes" / volume["name"]
        _write_object_files(rest, namespace, kind, name, source, path)
    elif "emptyDir" in volume:
        path = pod_root / "volumes" / volume["name"]
    else:
        raise PodConfigError("CreateContainerConfigError", f"volume type of {volume['name']!r} unsupported")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_object_files(
    rest: Rest, namespace: str, kind: str, name: str, source: dict[str, Any], path: Path
) -> None:
    data = _object_data(rest, namespace, kind, name, optional=bool(source.get("optional")))
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    path.mkdir(parents=True, exist_ok=True)
    for item in items:
        if item["key"] not in data:
            raise PodConfigError("CreateContainerConfigError", f"key {item['key']!r} not in {kind} {name}")
        target = path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[item["key"]])


def _object_data(rest: Rest, namespace: str, kind: str, name: str, optional: bool) -> dict[str, bytes]:
    """A ConfigMap's or Secret's data as bytes (Secret values base64-decoded)."""
    plural = "configmaps" if kind == "configMap" else "secrets"
    obj = rest.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
    if obj is None:
        if optional:
            return {}
        raise PodConfigError("CreateContainerConfigError", f'{kind} "{name}" not found')
    if kind == "configMap":
        return {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    return {**data, **{k: v.encode() for k, v in (obj.get("stringData") or {}).items()}}


def _container_env(rest: Rest, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind = "configMap" if "configMapRef" in source else "secret"
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        data = _object_data(rest, namespace, kind, ref["name"], optional=bool(ref.get("optional")))
        env.update({source.get("prefix", "") + k: v.decode() for k, v in data.items()})
    for var in container.get("env") or []:
        value = _env_value(rest, pod, var)
        if value is not None:
            env[var["name"]] = value
    return env


def _env_value(rest: Rest, pod: dict[str, Any], var: dict[str, Any]) -> str | None:
    source = var.get("valueFrom")
    if source is None:
        return str(var.get("value", ""))
    for key, kind in (("secretKeyRef", "secret"), ("configMapKeyRef", "configMap")):
        if key in source:
            ref = source[key]
            data = _object_data(
                rest, pod["metadata"]["namespace"], kind, ref["name"], bool(ref.get("optional"))
            )
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PodConfigError(
                    "CreateContainerConfigError", f"key {ref['key']!r} not in {kind} {ref['name']}"
                )
            return data[ref["key"]].decode()
    if "fieldRef" in source:
        return _field_value(pod, source["fieldRef"]["fieldPath"])
    raise PodConfigError("CreateContainerConfigError", f"env {var['name']}: unsupported valueFrom {source}")


def _field_value(pod: dict[str, Any], path: str) -> str:
    meta = pod["metadata"]
    if path.startswith(("metadata.annotations[", "metadata.labels[")):
        table = meta.get("annotations" if "annotations" in path else "labels") or {}
        return str(table.get(path.split("[", 1)[1].strip("]'\""), ""))
    simple: dict[str, str] = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
              "status.podIP": (pod.get("status") or {}).get("podIP", ""),
              "status.hostIP": "127.0.0.1"}  # fmt: skip
    if path not in simple:
        raise PodConfigError("CreateContainerConfigError", f"fieldRef {path} unsupported")
    return simple[path]


class Runtime(Protocol):
    """What the kubelet asks of a container runtime (ProcessRuntime here, kubelet_podman.PodmanRuntime)."""

    in_container: bool
    """Whether the pod gets a filesystem of its own (an image): see `prepare`."""

    def spawn(self, sandbox: PodSandbox, pod: dict[str, Any]) -> subprocess.Popen[bytes]: ...

    def kill(self, process: subprocess.Popen[bytes], pod: dict[str, Any], grace_s: float) -> None: ...

    def close(self) -> None: ...


class ProcessRuntime:
    """The default runtime: each pod's container is a local process (`spawn`); tests/kube/kubelet_podman.py
    holds the other one (containers from images). The kubelet calls `spawn`, `kill` and `close` only."""

    in_container = False

    def spawn(self, sandbox: PodSandbox, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        return spawn(sandbox)

    def kill(self, process: subprocess.Popen[bytes], pod: dict[str, Any], grace_s: float) -> None:
        """What deleting a pod does on a node: SIGTERM the process group, SIGKILL after the grace period."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        pass


def spawn(sandbox: PodSandbox) -> subprocess.Popen[bytes]:
    """Start the container: `unshare -rm` + overlays + bind mounts, then the command (own session, so
    the process group can be signalled as one). A PID namespace of its own, as a container has: its
    init is the shell, which runs the command as a child and exits with its code, and when that init
    dies the kernel kills every process left in the pod, those that started sessions of their own too
    (torchrun's workers), as when a container is killed."""
    script = _mount_script(sandbox)
    with sandbox.log.open("ab") as log:
        return subprocess.Popen(
            ["unshare", "-rm", *_pid_namespace(), "--", "/bin/sh", "-c", script, "pod", *sandbox.argv],
            env=sandbox.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


@functools.cache
def _pid_namespace() -> tuple[str, ...]:
    """unshare's flags for a PID namespace with its own /proc (so pids read from /proc are the pod's
    own, as in a container); none where this machine refuses it (a container that masks /proc): pods
    then share this machine's PID namespace and a killed pod may leave processes that left its group."""
    flags = ("--pid", "--fork", "--mount-proc")
    probe = subprocess.run(["unshare", "-rm", *flags, "--", "true"], capture_output=True, check=False)
    return flags if probe.returncode == 0 else ()


def _mount_script(sandbox: PodSandbox) -> str:
    lines = ["set -e"]
    for index, ancestor in enumerate(_overlay_ancestors(sandbox)):
        upper, work = sandbox.root / f"overlay{index}" / "upper", sandbox.root / f"overlay{index}" / "work"
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={ancestor},upperdir={upper},workdir={work}"
        target = shlex.quote(ancestor)  # overlay fails over some submounts (/mnt here): then a tmpfs
        lines.append(f"mount -t overlay overlay -o {shlex.quote(options)} {target} 2>/dev/null || "
                     f"mount -t tmpfs tmpfs {target}")  # fmt: skip
    for mount in sorted(sandbox.mounts, key=lambda m: m.target.count("/")):
        target = shlex.quote(mount.target)
        if mount.source.is_dir():
            lines.append(f"[ -e {target} ] || mkdir -p {target}")
        else:
            lines.append(f"[ -e {target} ] || {{ mkdir -p {_parent(mount.target)}; touch {target}; }}")
        lines.append(f"mount --bind {shlex.quote(str(mount.source))} {target}")
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {target}")
    lines.append(f"cd {shlex.quote(sandbox.workdir)}")
    lines.append('"$@"')  # not exec: the shell stays the pod's init (see `spawn`)
    return "\n".join(lines)


def _parent(target: str) -> str:
    return shlex.quote(str(Path(target).parent))


def _overlay_ancestors(sandbox: PodSandbox) -> list[str]:
    """Nearest existing ancestor of each mountPath that does not exist here (made writable by an overlay)."""
    ancestors: list[str] = []
    protected = [sandbox.root.resolve(), VENV_BIN.resolve(), *(m.source.resolve() for m in sandbox.mounts)]
    for mount in sandbox.mounts:
        path = Path(mount.target)
        if path.exists():
            continue
        while not path.exists():
            path = path.parent
        if path == Path("/") or any(p.is_relative_to(path) for p in protected):
            raise PodConfigError("CreateContainerError", f"cannot create mountPath {mount.target} here")
        if str(path) not in ancestors:
            ancestors.append(str(path))
    return ancestors


def termination(sandbox: PodSandbox, exit_code: int, policy: str) -> str:
    """The termination message: its file, else (FallbackToLogsOnError, on failure) the log's tail."""
    message = (
        sandbox.termination_log.read_bytes()[:TERMINATION_LIMIT] if sandbox.termination_log.exists() else b""
    )
    if not message.strip() and exit_code != 0 and policy == "FallbackToLogsOnError":
        lines = sandbox.log.read_bytes().splitlines()[-LOG_FALLBACK_LINES:]
        message = b"\n".join(lines)[-LOG_FALLBACK_BYTES:]
    return message.decode(errors="replace")
