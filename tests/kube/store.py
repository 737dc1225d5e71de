"""The emulator's object store and the API semantics on top of it: one global resourceVersion,
uid/creationTimestamp/generation, create/get/list/update/patch/delete, the status subresource,
finalizers, garbage collection by ownerReferences, namespace termination and CRD registration.

Called by app.py (HTTP) on the server's event loop only, so it takes no locks. Every write appends an
event to a bounded history (watch from a resourceVersion; an older one is 410 Expired) and hands it to
the live watch queues. Garbage collection and namespace termination run after each write (gc.py).
Admission: a ResourceQuota's `pods` limit is enforced on pod creation (`_check_pod_quota`), nothing else.
Limits: no other admission plugins (no other quotas, no service account injection, no default service account
or kube-root-ca.crt per namespace), no managedFields, core/v1 and events.k8s.io/v1 Events are
separate collections.
"""

from __future__ import annotations

import contextlib
import copy
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import builtins, errors
from .crd_checks import crd_causes
from .gc import GarbageCollector
from .patches import apply_patch
from .resources import BUILTINS, ResourceType, crd_names_status, from_crd
from .selectors import field_matcher, label_matcher
from .validation import admit_custom, cause, name_causes

Key = tuple[str, str]
"""(group, plural): where a resource's objects live, whatever version they are read through."""
Obj = dict[str, Any]
HISTORY = 5000
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Event:
    rv: int
    type: str
    key: Key
    obj: Obj


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store(GarbageCollector):
    def __init__(self) -> None:
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self.objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self.uids: dict[str, tuple[Key, tuple[str, str]]] = {}
        self.rv = 0
        self.history: deque[Event] = deque(maxlen=HISTORY)
        self.listeners: list[Callable[[Event], None]] = []
        for rt in BUILTINS:
            self.register(rt)
        namespaces = self.resolve("", "v1", "namespaces")
        for name in DEFAULT_NAMESPACES:
            self.create(namespaces, "", {"metadata": {"name": name}})

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[None]:
        """dryRun=All: run the request in full (admission, defaulting, errors), then forget it."""
        saved = (copy.deepcopy(self.objects), dict(self.uids), dict(self.types), self.rv, list(self.history))
        listeners, self.listeners = self.listeners, []
        try:
            yield
        finally:
            self.objects, self.uids, self.types, self.rv, history = saved
            self.history, self.listeners = deque(history, maxlen=HISTORY), listeners

    # -- types -----------------------------------------------------------------------------------
    def register(self, rt: ResourceType) -> None:
        self.types[(rt.group, rt.version, rt.plural)] = rt
        self.objects.setdefault(rt.key, {})

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.types.get((group, version, plural))
        if rt is None:
            raise errors.page_not_found()
        return rt

    def _sync_crd(self, crd: Obj, removed: bool = False) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for key in [k for k in self.types if k[0] == group and k[2] == plural]:
            del self.types[key]
        if removed:
            for obj in list(self.objects.pop((group, plural), {}).values()):
                self._emit("DELETED", (group, plural), obj, drop=True)
            return
        for rt in from_crd(crd):
            self.register(rt)

    # -- reads -----------------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        obj = self.objects[rt.key].get((ns if rt.namespaced else "", name))
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return self.render(rt, obj)

    def render(self, rt: ResourceType, obj: Obj) -> Obj:
        """A copy of a stored object as read through `rt`'s version."""
        return {**copy.deepcopy(obj), "apiVersion": rt.api_version, "kind": rt.kind}

    def list_objects(
        self, rt: ResourceType, ns: str | None, labels: str | None = None, fields: str | None = None
    ) -> list[Obj]:
        match = self.matcher(rt, ns, labels, fields)
        found = [self.render(rt, o) for o in self.objects[rt.key].values() if match(o)]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def matcher(
        self, rt: ResourceType, ns: str | None, labels: str | None, fields: str | None
    ) -> Callable[[Obj], bool]:
        by_label, by_field = label_matcher(labels), field_matcher(fields)
        return lambda o: (
            (not ns or not rt.namespaced or o["metadata"].get("namespace") == ns)
            and by_label(o)
            and by_field(o)
        )

    def events_since(self, rv: int) -> list[Event]:
        if self.history and rv < self.history[0].rv - 1:
            raise errors.gone(f"too old resource version: {rv} ({self.history[0].rv - 1})")
        return [e for e in self.history if e.rv > rv]

    # -- writes ----------------------------------------------------------------------------------
    def create(
        self, rt: ResourceType, ns: str, body: Obj, strictness: str = "Strict"
    ) -> tuple[Obj, list[str]]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        self._check_kind(rt, obj)
        if str(meta.get("resourceVersion") or "0").isdigit() and int(meta.get("resourceVersion") or 0):
            # what etcd3's storage says, passed through as a 500 without a reason
            raise errors.ApiError(500, "", "resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            self._check_namespace(rt, ns, meta)
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_CHARS, k=5))
        if rt.status and rt.crd is not None:
            obj.pop("status", None)  # a custom resource with a status subresource is created without one
        obj, warnings = self._admit(rt, obj, None, strictness)
        meta = obj["metadata"]
        if (meta.get("namespace", ""), meta["name"]) in self.objects[rt.key]:
            raise errors.already_exists(rt.plural, rt.group, meta["name"])
        for stale in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):  # "-1" passes
            meta.pop(stale, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if rt.generation:
            meta["generation"] = 1
        self._on_create(rt, obj)
        self._store(rt, obj, "ADDED")
        self._sweep()
        return self.render(rt, obj), warnings

    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Obj,
        subresource: str | None = None,
        strictness: str = "Strict",
    ) -> tuple[Obj, list[str]]:
        current = self._current(rt, ns, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if not rv and rt.crd is not None:
            causes = [
                cause(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
            ]
            raise errors.invalid(rt.kind, rt.group, name, causes)
        return self._write(rt, current, copy.deepcopy(body), rv, subresource, strictness)

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str | None = None,
        strictness: str = "Strict",
    ) -> tuple[Obj, list[str]]:
        current = self._current(rt, ns, name)
        patched = apply_patch(self.render(rt, current), patch, content_type)
        rv = (patched.get("metadata") or {}).get("resourceVersion")
        return self._write(rt, current, patched, rv, subresource, strictness)

    def delete(self, rt: ResourceType, ns: str, name: str, options: Obj | None = None) -> Obj:
        options = options or {}
        obj = self._current(rt, ns, name)
        if rt.kind == "Namespace" and name in ("default", "kube-system", "kube-public"):
            raise errors.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        pre = options.get("preconditions") or {}
        if pre.get("uid") not in (None, obj["metadata"]["uid"]) or pre.get("resourceVersion") not in (
            None,
            obj["metadata"]["resourceVersion"],
        ):
            raise errors.conflict(rt.plural, rt.group, name)
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if policy == "Orphan":
            self._orphan(meta["uid"])
        elif policy == "Foreground" and self._dependents(meta["uid"]):
            meta["finalizers"] = [*meta.get("finalizers", []), "foregroundDeletion"]
        if not meta.get("finalizers") and rt.kind != "Namespace":
            self._remove(rt, obj)
        elif not meta.get("deletionTimestamp"):
            meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
            if rt.kind == "Namespace":
                obj.setdefault("status", {})["phase"] = "Terminating"
            self._store(rt, obj, "MODIFIED")
        self._sweep()
        return self.render(rt, obj)

    # -- helpers ---------------------------------------------------------------------------------
    def _current(self, rt: ResourceType, ns: str, name: str) -> Obj:
        obj = self.objects[rt.key].get((ns if rt.namespaced else "", name))
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def _check_kind(self, rt: ResourceType, obj: Obj) -> None:
        if obj.get("kind", rt.kind) != rt.kind or obj.get("apiVersion", rt.api_version) != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({rt.api_version})"
            )
        obj.update(kind=rt.kind, apiVersion=rt.api_version)

    def _check_namespace(self, rt: ResourceType, ns: str, meta: Obj) -> None:
        if meta.get("namespace") not in (None, "", ns):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        namespace = self.objects[("", "namespaces")].get(("", ns))
        if namespace is None:
            raise errors.not_found("namespaces", "", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            message = (
                f'{rt.plural}{"." + rt.group if rt.group else ""} "{meta.get("name", "")}" is forbidden: '
                f"unable to create new content in namespace {ns} because it is being terminated"
            )
            raise errors.ApiError(
                403, "Forbidden", message, {"name": meta.get("name", ""), "kind": rt.plural}
            )

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None, strictness: str) -> tuple[Obj, list[str]]:
        if rt.crd is not None:
            return admit_custom(rt, obj, old, strictness)
        causes = name_causes(rt, obj["metadata"])
        if rt.kind == "CustomResourceDefinition" and not causes:
            causes = crd_causes(obj)
        if old is not None and not causes:
            causes = builtins.on_update(rt.kind, obj, old)
        if causes:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj, []

    def _on_create(self, rt: ResourceType, obj: Obj) -> None:
        if rt.crd is None:
            causes = builtins.on_create(rt.kind, obj)
            if causes:
                raise errors.invalid(rt.kind, rt.group, obj["metadata"]["name"], causes)
        if rt.kind == "Pod":
            self._check_pod_quota(obj)
        if rt.kind == "Namespace":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif rt.kind == "CustomResourceDefinition":
            obj["status"] = crd_names_status(obj)
            self._sync_crd(obj)

    def _check_pod_quota(self, pod: Obj) -> None:
        """The ResourceQuota admission plugin, for `pods` only: a pod past a quota's spec.hard.pods in
        its namespace is forbidden with the API server's message (what a Job controller then reports
        as FailedCreate). Pods that finished do not count, as in Kubernetes."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        quotas = self.objects.get(("", "resourcequotas"), {})
        used = sum(
            1
            for (pns, _), p in self.objects.get(("", "pods"), {}).items()
            if pns == ns and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        for (qns, qname), quota in sorted(quotas.items()):
            hard = ((quota.get("spec") or {}).get("hard") or {}).get("pods")
            if qns == ns and hard is not None and used + 1 > int(hard):
                message = (
                    f'pods "{name}" is forbidden: exceeded quota: {qname}, requested: pods=1, '
                    f"used: pods={used}, limited: pods={hard}"
                )
                raise errors.ApiError(403, "Forbidden", message, {"name": name, "kind": "pods"})

    def _write(
        self,
        rt: ResourceType,
        current: Obj,
        new: Obj,
        rv: str | None,
        subresource: str | None,
        strictness: str,
    ) -> tuple[Obj, list[str]]:
        name = current["metadata"]["name"]
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if (new.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({new['metadata']['name']}) does not match the name "
                f"on the URL ({name})"
            )
        self._check_kind(rt, new)
        new = self._scope_to_subresource(rt, current, new, subresource)
        new, warnings = self._admit(rt, new, current, strictness)
        if _without_rv(new) == _without_rv(current):
            return self.render(rt, current), warnings  # a no-op write changes nothing, not even the version
        if rt.generation and _generation_part(rt, new) != _generation_part(rt, current):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if rt.kind == "CustomResourceDefinition":
            self._sync_crd(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind != "Namespace":
            self._remove(rt, new)
        else:
            self._store(rt, new, "MODIFIED")
        self._sweep()
        return self.render(rt, new), warnings

    def _scope_to_subresource(self, rt: ResourceType, current: Obj, new: Obj, subresource: str | None) -> Obj:
        """/status writes change only status; the main endpoint ignores status where /status exists."""
        if subresource not in (None, "status") or (subresource == "status" and not rt.status):
            raise errors.page_not_found()
        if subresource == "status":
            new = {**copy.deepcopy(current), "status": new.get("status")}
            if new["status"] is None:
                del new["status"]
            return new
        meta = new.setdefault("metadata", {})
        for kept in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "resourceVersion",
        ):
            if kept in current["metadata"]:
                meta[kept] = current["metadata"][kept]
            else:
                meta.pop(kept, None)
        if rt.status:
            new.pop("status", None)
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
        return new

    def _store(self, rt: ResourceType, obj: Obj, kind: str) -> None:
        meta = obj["metadata"]
        self.objects[rt.key][(meta.get("namespace", ""), meta["name"])] = obj
        self.uids[meta["uid"]] = (rt.key, (meta.get("namespace", ""), meta["name"]))
        self._emit(kind, rt.key, obj)

    def _remove(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        self.objects[rt.key].pop((meta.get("namespace", ""), meta["name"]), None)
        self.uids.pop(meta["uid"], None)
        if rt.kind == "CustomResourceDefinition":
            self._sync_crd(obj, removed=True)
        self._emit("DELETED", rt.key, obj)

    def _emit(self, kind: str, key: Key, obj: Obj, drop: bool = False) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if drop:
            self.uids.pop(obj["metadata"].get("uid", ""), None)
        event = Event(self.rv, kind, key, copy.deepcopy(obj))
        self.history.append(event)
        for listener in list(self.listeners):
            listener(event)


def _without_rv(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def _generation_part(rt: ResourceType, obj: Obj) -> Obj:
    skipped = (
        {"metadata", "status", "kind", "apiVersion"} if rt.status else {"metadata", "kind", "apiVersion"}
    )
    return {k: v for k, v in obj.items() if k not in skipped}
