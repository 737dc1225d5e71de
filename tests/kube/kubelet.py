"""Local Job runner ("test kubelet"): the Job controller and a one-node kubelet for the API emulator.

Watches batch/v1 Jobs through the API (optionally by label selector), creates their Pods the way the Job
controller does (names `<job>-<index>-<random>`, job-name / controller-uid / completion-index labels,
a controlling ownerReference), runs each Pod as a local process (tests/kube/kubelet_pods.py: env,
volumes bind-mounted at their mountPaths, termination message; each pod gets its own loopback podIP,
127.x.y.z, which the downward API hands to the container) and writes Pod and Job status back
through the API (shapes in tests/kube/kubelet_objects.py): active/ready/succeeded/failed,
completedIndexes, startTime, completionTime, conditions Suspended, Complete, Failed
(BackoffLimitExceeded, DeadlineExceeded). Honours suspend (pods deleted and their process groups
killed), parallelism, completions, Indexed completion mode, backoffLimit and
activeDeadlineSeconds. A deleted Job's processes are killed. Pods with a subdomain (an Indexed
Job's pods behind a headless Service, as multi-node SFT has them) resolve each other's
`<hostname>.<subdomain>` names through an /etc/hosts of their own (`_publish_hosts`). A pod the API
server refuses (the emulator's ResourceQuota) becomes a Warning event FailedCreate on the Job, as the
Job controller posts it, and is tried again on the next resync.

Used by the operator end-to-end tests and tests/kube/test_kubelet.py, against the emulator's kubeconfig.
Limits: at most `max_running` pods run at once on this machine (others stay Pending, as on a full node);
no retry back-off delay; pods deleted by someone else keep running until their Job goes; state lives in
this process (a restarted kubelet does not adopt earlier pods).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config
from kubernetes.watch.watch import iter_resp_lines

from .kubelet_objects import (
    JobKey,
    PodRun,
    counts,
    indexed,
    job_key,
    now,
    pod_manifest,
    running_status,
    seconds_since,
    set_condition,
    terminated_status,
    waiting_status,
)
from .kubelet_pods import (
    VENV_BIN,
    Mount,
    PodConfigError,
    ProcessRuntime,
    Rest,
    Runtime,
    prepare,
    termination,
)

log = logging.getLogger(__name__)
JOBS = "/apis/batch/v1"
RUNTIME_ENV = "ADACOT_KUBELET_RUNTIME"
"""Selects the runtime when the constructor does not: `process` (default) or `podman`."""


def _runtime(name: str, pids_limit: int | None) -> Runtime:
    """The container runtime by name (ProcessRuntime or kubelet_podman.PodmanRuntime)."""
    if name == "process":
        return ProcessRuntime()
    if name == "podman":
        from .kubelet_podman import PodmanRuntime

        return PodmanRuntime(pids_limit=pids_limit)
    raise ValueError(f"unknown kubelet runtime {name!r} (process or podman)")


class LocalKubelet:
    """Context manager: `with LocalKubelet(kube_api.kubeconfig, tmp_path) as kubelet: ...`."""

    def __init__(
        self, kube: ApiClient | str | Path, volume_root: Path, *, max_running: int = 1,
        namespace: str | None = None, label_selector: str | None = None,
        extra_env: dict[str, str] | None = None, resync_s: float = 0.5, grace_s: float = 5.0,
        runtime: str | None = None, pids_limit: int | None = None,
    ) -> None:  # fmt: skip
        api = kube if isinstance(kube, ApiClient) else new_client_from_config(config_file=str(kube))  # type: ignore[no-untyped-call]
        self.runtime = _runtime(runtime or os.environ.get(RUNTIME_ENV) or "process", pids_limit)
        self.rest = Rest(api)
        self.volume_root = Path(volume_root)
        self.max_running, self.namespace, self.selector = max_running, namespace, label_selector
        self.resync_s, self.grace_s = resync_s, grace_s
        self.pods: dict[str, PodRun] = {}
        self._events: queue.Queue[JobKey] = queue.Queue()
        self._known: set[JobKey] = set()
        self._create_errors: dict[JobKey, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch_response: Any = None
        extra = extra_env or {}
        self.base_env = dict(extra) if self.runtime.in_container else self._base_env(api, extra)
        self._ip_base, self._ip_seq = random.randrange(1 << 16, 1 << 23), 0

    # ---------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalKubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for target in (self._watch_jobs, self._control_loop):
            thread = threading.Thread(target=target, name=f"kubelet-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop watching and kill every process still running (their pods are left as they are)."""
        self._stop.set()
        with contextlib.suppress(Exception):  # unblocks the watch thread's read (close() would wait for it)
            self._watch_response.connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=10)
        for run in self.pods.values():
            self._kill(run)
        self.runtime.close()

    def pods_of(self, job: str) -> list[PodRun]:
        """The pods made for Job `job`, oldest first (a snapshot: the control thread adds pods)."""
        return [run for run in list(self.pods.values()) if run.job[1] == job]

    def log_of(self, pod: str) -> str:
        sandbox = self.pods[pod].sandbox
        return sandbox.log.read_text(errors="replace") if sandbox and sandbox.log.exists() else ""

    def _base_env(self, api: ApiClient, extra: dict[str, str]) -> dict[str, str]:
        """What every container sees besides its own env: PATH (venv first), how to reach the API."""
        token = str(api.configuration.api_key.get("authorization", "")).removeprefix("Bearer ").strip()
        token_file = self.volume_root / "serviceaccount" / "token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token or "local-kubelet")
        path = f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {"PATH": path, "LANG": "C.UTF-8", "ADACOT_API_SERVER": self.rest.url,
                "ADACOT_TOKEN_FILE": str(token_file), **extra}  # fmt: skip

    # ---------------------------------------------------------------------------------- loops

    def _jobs_path(self) -> str:
        return f"{JOBS}/namespaces/{self.namespace}/jobs" if self.namespace else f"{JOBS}/jobs"

    def _watch_jobs(self) -> None:
        """List then watch Jobs; every event queues its Job for a reconcile. Reconnects on any error."""
        query = {"labelSelector": self.selector} if self.selector else {}
        while not self._stop.is_set():
            try:
                listing = self.rest.call("GET", self._jobs_path(), query=query)
                for job in listing.get("items") or []:
                    self._events.put(job_key(job))
                version = (listing.get("metadata") or {}).get("resourceVersion")
                self._watch_response = self.rest.watch_lines(
                    self._jobs_path(), {**query, **({"resourceVersion": version} if version else {})}, 60
                )
                for line in iter_resp_lines(self._watch_response):  # type: ignore[no-untyped-call]
                    event = json.loads(line) if line else {}
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._events.put(job_key(event["object"]))
                    elif event.get("type") == "ERROR" or self._stop.is_set():
                        break
            except Exception as error:  # a dropped watch is normal: list again
                if not self._stop.is_set():
                    log.debug("job watch restarts: %s", error)
                    self._stop.wait(0.5)

    def _control_loop(self) -> None:
        """Reconcile queued Jobs; every `resync_s` without events, all known ones (deadlines, free slots)."""
        while not self._stop.is_set():
            try:
                keys = {self._events.get(timeout=self.resync_s)}
            except queue.Empty:
                keys = set(self._known)
            while not self._events.empty():
                keys.add(self._events.get_nowait())
            for key in sorted(keys):
                try:
                    self._reconcile(key)
                except Exception:
                    log.exception("reconciling job %s/%s failed", *key)
            self._schedule()

    # ---------------------------------------------------------------------------------- Job controller

    def _reconcile(self, key: JobKey) -> None:
        job = self.rest.get(f"{JOBS}/namespaces/{key[0]}/jobs/{key[1]}")
        uid = job["metadata"]["uid"] if job else None
        for run in self.pods.values():
            if run.job == key and run.job_uid != uid and run.active:
                self._delete(run)  # the Job is gone (or replaced by a new one of the same name)
        if job is None:
            self._known.discard(key)
            return
        self._known.add(key)
        runs = [r for r in self.pods.values() if r.job == key and r.job_uid == uid and not r.deleted]
        for run in runs:
            self._finish_if_exited(run)
        old = job.get("status") or {}
        status = self._job_status(job, runs, old)
        if status != old:
            patch = {k: status.get(k) for k in {*old, *status}}  # None removes a field (merge patch)
            self.rest.merge_patch(f"{JOBS}/namespaces/{key[0]}/jobs/{key[1]}/status", {"status": patch})

    def _job_status(self, job: dict[str, Any], runs: list[PodRun], old: dict[str, Any]) -> dict[str, Any]:
        status = {k: v for k, v in old.items() if v is not None}
        conditions = [dict(c) for c in old.get("conditions") or []]
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            for run in runs:
                self._delete(run) if run.active else None
            return status
        spec = job["spec"]
        if spec.get("suspend"):
            for run in runs:
                self._delete(run) if run.active else None
            set_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended")
            status.pop("startTime", None)
            return {**status, **counts(job, runs), "conditions": conditions}
        if any(c["type"] == "Suspended" for c in conditions):
            set_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed")
        status.setdefault("startTime", now())
        failure = self._failure(job, runs, status["startTime"])
        if failure:
            for run in runs:
                self._delete(run) if run.active else None
            set_condition(conditions, "Failed", "True", *failure)
        elif self._complete(job, runs):
            set_condition(
                conditions,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
            status["completionTime"] = now()
        else:
            self._create_pods(job, runs)
            runs = [
                r for r in self.pods.values() if r.job == job_key(job) and r.job_uid == job["metadata"]["uid"]
            ]
        return {**status, **counts(job, [r for r in runs if not r.deleted]), "conditions": conditions}

    def _failure(self, job: dict[str, Any], runs: list[PodRun], start: str) -> tuple[str, str] | None:
        spec = job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and seconds_since(start) >= deadline:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        if sum(r.phase == "Failed" for r in runs) > spec.get("backoffLimit", 6):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        return None

    def _complete(self, job: dict[str, Any], runs: list[PodRun]) -> bool:
        succeeded = [r for r in runs if r.phase == "Succeeded"]
        completions = job["spec"].get("completions") or 1
        if indexed(job):
            return len({r.index for r in succeeded}) >= completions
        return len(succeeded) >= completions

    def _create_pods(self, job: dict[str, Any], runs: list[PodRun]) -> None:
        spec = job["spec"]
        completions, parallelism = spec.get("completions") or 1, spec.get("parallelism", 1)
        active = [r for r in runs if r.active]
        if indexed(job):
            busy = {r.index for r in active} | {r.index for r in runs if r.phase == "Succeeded"}
            todo: list[int | None] = [i for i in range(completions) if i not in busy]
        else:
            todo = [None] * (completions - sum(r.phase == "Succeeded" for r in runs) - len(active))
        for index in todo[: max(0, parallelism - len(active))]:
            try:
                pod = self.rest.call(
                    "POST", f"/api/v1/namespaces/{job_key(job)[0]}/pods", pod_manifest(job, index)
                )
            except ApiException as refused:  # quota, admission: retried on the next resync
                self._failed_create(job, refused)
                return
            run = PodRun(job=job_key(job), job_uid=job["metadata"]["uid"], index=index, pod=pod)
            self.pods[run.name] = run

    def _failed_create(self, job: dict[str, Any], refused: ApiException) -> None:
        """The Job controller's Warning event: reason FailedCreate, "Error creating: <the API's message>",
        posted once per distinct message (Kubernetes aggregates repeats into a count)."""
        try:
            message = json.loads(refused.reason or "{}").get("message") or str(refused.reason)
        except ValueError:
            message = str(refused.reason)
        if self._create_errors.get(job_key(job)) == message:
            return
        self._create_errors[job_key(job)] = message
        ns, name = job_key(job)
        stamp = now()
        self.rest.call("POST", f"/api/v1/namespaces/{ns}/events", {
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": name, "namespace": ns,
                               "uid": job["metadata"]["uid"]},
            "type": "Warning", "reason": "FailedCreate", "message": f"Error creating: {message}",
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "source": {"component": "job-controller"},
        })  # fmt: skip

    # ---------------------------------------------------------------------------------- kubelet

    def _schedule(self) -> None:
        """Start Pending pods, oldest first, while fewer than `max_running` processes run."""
        running = sum(r.process is not None and r.process.poll() is None for r in self.pods.values())
        for run in list(self.pods.values()):
            if running >= self.max_running:
                return
            if run.active and run.process is None and self._start(run):
                running += 1

    def _start(self, run: PodRun) -> bool:
        run.ip = self._next_ip()
        run.pod.setdefault("status", {})["podIP"] = run.ip  # the downward API's status.podIP
        try:
            run.sandbox = prepare(
                self.rest, run.pod, self.volume_root, self.base_env, in_container=self.runtime.in_container
            )
            hosts = self._publish_hosts(run)
            if hosts is not None:  # the pod's DNS: a file of its own at /etc/hosts
                run.sandbox.mounts.append(Mount(hosts, "/etc/hosts", read_only=True))
            run.process = self.runtime.spawn(run.sandbox, run.pod)
        except PodConfigError as error:
            self._pod_status(run, waiting_status(run, error))
            return False
        run.phase, run.started_at = "Running", now()
        self._pod_status(run, running_status(run))
        process = run.process
        threading.Thread(target=self._wait_exit, args=(process, run.job), daemon=True).start()
        return True

    def _publish_hosts(self, starting: PodRun) -> Path | None:
        """Cluster DNS for a pod with a subdomain: one hosts file per (namespace, subdomain), rewritten
        in place (so every pod that bind-mounted it sees the change) whenever a pod of it starts. It
        holds this machine's /etc/hosts, then `<hostname>.<subdomain>[.<ns>[.svc[.cluster.local]]]`
        for each started pod of the subdomain, as DNS answers for a headless Service of that name (no
        Service: no names, as in a cluster). None for a pod without a subdomain."""
        spec, namespace = starting.pod["spec"], starting.job[0]
        subdomain = spec.get("subdomain")
        if not subdomain:
            return None
        path = self.volume_root / "dns" / namespace / subdomain / "hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [Path("/etc/hosts").read_text(errors="replace").rstrip("\n"), f"# pods of {subdomain}"]
        if self.rest.get(f"/api/v1/namespaces/{namespace}/services/{subdomain}") is not None:
            peers = [r for r in self.pods.values() if r.active and (r.process is not None or r is starting)]
            for run in peers:
                host = run.pod["spec"].get("hostname")
                if run.job[0] == namespace and run.pod["spec"].get("subdomain") == subdomain and host:
                    fqdn = f"{host}.{subdomain}.{namespace}.svc"
                    names = [
                        f"{fqdn}.cluster.local",
                        fqdn,
                        f"{host}.{subdomain}.{namespace}",
                        f"{host}.{subdomain}",
                    ]
                    lines.append(f"{run.ip} {' '.join(names)}")
        path.write_text("\n".join(lines) + "\n")  # in place: the bind mounts follow the inode
        return path

    def _next_ip(self) -> str:
        """A loopback address of its own for each pod (all of 127/8 is loopback on Linux), so pods that
        listen on the same port never collide; a random start keeps concurrent kubelets apart."""
        self._ip_seq += 1
        n = self._ip_base + self._ip_seq
        return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{max(n & 255, 1)}"

    def _wait_exit(self, process: subprocess.Popen[bytes], job: JobKey) -> None:
        process.wait()
        self._events.put(job)

    def _finish_if_exited(self, run: PodRun) -> None:
        if run.phase != "Running" or run.process is None or run.process.poll() is None:
            return
        code = run.process.returncode
        code = (
            128 - code if code < 0 else code
        )  # killed by signal N -> 128 + N, as a container runtime reports
        assert run.sandbox is not None
        policy = run.pod["spec"]["containers"][0].get("terminationMessagePolicy", "File")
        run.phase = "Succeeded" if code == 0 else "Failed"
        self._pod_status(run, terminated_status(run, code, termination(run.sandbox, code, policy)))

    def _delete(self, run: PodRun) -> None:
        """What deleting a pod does on a node: the runtime's kill (SIGTERM, SIGKILL after the grace)."""
        self._kill(run)
        run.deleted = True
        self.rest.delete(f"/api/v1/namespaces/{run.job[0]}/pods/{run.name}")

    def _kill(self, run: PodRun) -> None:
        if run.process is None or run.process.poll() is not None:
            return
        self.runtime.kill(run.process, run.pod, self.grace_s)

    def _pod_status(self, run: PodRun, status: dict[str, Any]) -> None:
        if not run.deleted:
            run.pod = self.rest.merge_patch(
                f"/api/v1/namespaces/{run.job[0]}/pods/{run.name}/status", {"status": status}
            )
