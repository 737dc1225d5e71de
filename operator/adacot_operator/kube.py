"""The one module of the operator that talks to the Kubernetes API.

Callers: `adacot_operator.handlers` (sync handlers, run by kopf in its thread pool). kopf itself only
watches and delivers events; every read and write the operator makes goes through `Kube`.

Choice: the official `kubernetes` client's ApiClient for connection, TLS and credentials (in-cluster
service account, else $KUBECONFIG / ~/.kube/config), but raw JSON in and out through one `_call`: the
generated typed models would turn the manifests (plain dicts from builders.children.build_children)
into snake_case objects and back, for nothing. Status writes are JSON merge patches on the `status`
subresource, so they touch only the fields named. Stage pods write nothing to the API (no token).
kopf is not imported here: the handlers pass in what they read from kopf's events.

Limits: no retries here (a failed call raises `KubeError`; the handler's reconcile fails, is counted,
and the next event or timer tick reconciles again); list calls read one page (no `continue`), enough
for the few resources and pods one namespace holds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from adacot.api import GROUP, RESOURCE_KINDS, VERSION, AnyResource
from adacot_operator.names import child_name, label_selector
from adacot_operator.reconcile import Event
from adacot_operator.status import Children

#: API path prefix and plural of the built-in kinds the operator creates or reads.
BUILTIN: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
}
MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "adacot-operator"


class KubeError(RuntimeError):
    """An API call failed; the message names the method, path and the server's status and reason."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {_reason(text)}")


class Kube:
    """Reads and writes of the operator, as JSON dicts (see the module docstring)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._own_status: dict[tuple[str, str, str], set[str]] = {}
        """resourceVersions this client's status patches produced, until `own_status_write` is asked."""
        self._own_lock = threading.Lock()

    @classmethod
    def connect(cls) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        return self._call("GET", f"{_collection(kind, namespace)}/{name}", missing_ok=True)

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` (filtered by a label selector)."""
        query = {"labelSelector": selector} if selector else None
        found = self._call("GET", _collection(kind, namespace), query=query) or {}
        return list(found.get("items") or [])

    def children(self, resource: AnyResource) -> Children:
        """The resource's Job (by its deterministic name) and that Job's pods (by label); while an
        unfinished Job has no pod, also its FailedCreate events (one more request, only then)."""
        ns = resource.metadata.namespace
        name = child_name(resource.kind, resource.metadata.name)
        job = self.get("Job", ns, name)
        pods = self.list("Pod", ns, label_selector(resource)) if job is not None else []
        events: list[dict[str, Any]] = []
        if job is not None and not pods and not _finished(job):
            fields = f"involvedObject.kind=Job,involvedObject.name={name},reason=FailedCreate"
            found = self._call("GET", _collection("Event", ns), query={"fieldSelector": fields}) or {}
            events = list(found.get("items") or [])
        return Children(job=job, pods=pods, events=events)

    def create(self, manifest: dict[str, Any]) -> bool:
        """Create the object; False when one of that name exists already (creating is idempotent)."""
        ns = manifest["metadata"].get("namespace", "default")
        try:
            self._call("POST", _collection(manifest["kind"], ns), body=manifest)
        except KubeError as err:
            if err.status == 409:
                return False
            raise
        return True

    def replace(self, manifest: dict[str, Any]) -> bool:
        """PUT the object as it is (its metadata.resourceVersion guards the write); False when someone
        wrote it since (409 Conflict)."""
        meta = manifest["metadata"]
        try:
            self._call(
                "PUT", f"{_collection(manifest['kind'], meta['namespace'])}/{meta['name']}", body=manifest
            )
        except KubeError as err:
            if err.status == 409:
                return False
            raise
        return True

    def delete(self, kind: str, namespace: str, name: str, propagation: str = "Background") -> None:
        """Delete the object (dependents in the background, or first with "Foreground"); a missing one
        is not an error."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        self._call("DELETE", f"{_collection(kind, namespace)}/{name}", body=body, missing_ok=True)

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch these top-level status fields on the status subresource; the resourceVersion it
        produced is remembered for `own_status_write`."""
        path = f"{_collection(kind, namespace)}/{name}/status"
        written = self._call("PATCH", path, body={"status": status}, content_type=MERGE_PATCH) or {}
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        if version:
            with self._own_lock:
                versions = self._own_status.setdefault((kind, namespace, name), set())
                if len(versions) >= 8:  # echoes never seen (a watch gap): keep the set small
                    versions.clear()
                versions.add(version)

    def own_status_write(self, kind: str, namespace: str, name: str, version: str) -> bool:
        """Whether `version` of the resource is the one a `patch_status` of this client produced (its
        watch echo), answered True once per write."""
        key = (kind, namespace, name)
        with self._own_lock:
            versions = self._own_status.get(key)
            if versions is None or version not in versions:
                return False
            versions.discard(version)
            if not versions:
                del self._own_status[key]
            return True

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The resource is gone: drop what was remembered of it."""
        with self._own_lock:
            self._own_status.pop((kind, namespace, name), None)

    def post_event(self, resource: dict[str, Any], event: Event) -> None:
        """A core/v1 Event on the resource (what `kubectl describe` shows)."""
        meta = resource["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": resource["apiVersion"],
                "kind": resource["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/operator",
            "reportingInstance": socket.gethostname(),
        }
        self._call("POST", _collection("Event", meta["namespace"]), body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = list(query.items()) if query else None
        _, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=params, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self.api.call_api(method, url, header_params=headers, body=body)
            data = response.read()  # type: ignore[no-untyped-call]
            status, text = response.status, data.decode() if data else ""
        except ApiException as err:
            status, text = err.status or 0, str(err.body or err.reason or "")
        if missing_ok and status == 404:
            return None
        if not 200 <= status < 300:
            raise KubeError(method, path, status, text)
        value = json.loads(text) if text else None
        return value if isinstance(value, dict) else None


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _collection(kind: str, namespace: str) -> str:
    if kind in RESOURCE_KINDS:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{RESOURCE_KINDS[kind].PLURAL}"
    prefix, plural = BUILTIN[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}"


def _reason(text: str) -> str:
    """The Status message of an error body, else the (short) body itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:300]
    return (
        str(body.get("message") or body.get("reason") or text[:300]) if isinstance(body, dict) else text[:300]
    )
