"""The adacot resources of each namespace as the operator last saw them, kept from kopf's watch events.

Why: a reconcile needs the namespace's dependency graph (a GradingRun names its bank with `bankRef`, so
a bank's inputs are only found by looking at every GradingRun). Listing the four kinds on every
reconcile made each one cost O(resources in the namespace) — 4 lists per timer tick per resource.
Instead each namespace is listed once, on its first reconcile (the seed: kopf's initial events alone
do not say when they are complete), and kept current from the watch events the handlers see.

Only the graph comes from here: a reconcile reads its own resource and its producers with fresh GETs,
so a producer's just-written phase is never missed. Ordering: an object is replaced only by a newer
resourceVersion (both numeric; the API server's are etcd revisions) and a deletion leaves a tombstone,
so a seed list that raced with a delete does not resurrect the object. A stale entry is harmless: its
fresh GET returns nothing, as a missing producer does.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any

Key = tuple[str, str]
"""(kind, name) within a namespace."""
Body = dict[str, Any]


class NamespaceCache:
    """Thread-safe: kopf runs sync handlers in a thread pool."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Body]] = {}
        self._gone: dict[str, dict[Key, int]] = {}
        self._seeded: set[str] = set()
        self._lock = threading.Lock()

    def bodies(self, namespace: str, seed: Callable[[], Mapping[Key, Body]]) -> dict[Key, Body]:
        """The namespace's resources; `seed` lists them the first time the namespace is asked for."""
        with self._lock:
            seeded = namespace in self._seeded
        if not seeded:
            listed = seed()  # outside the lock: an API call
            with self._lock:
                for key, body in listed.items():
                    self._put(namespace, key, body)
                self._seeded.add(namespace)
        with self._lock:
            return dict(self._objects.get(namespace, {}))

    def observe(self, kind: str, namespace: str, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A watch event of one resource (ADDED, MODIFIED, DELETED, or kopf's initial listing)."""
        key = (kind, str(body["metadata"]["name"]))
        plain = {**copy.deepcopy(dict(body)), "kind": kind}
        with self._lock:
            if not deleted:
                self._put(namespace, key, plain)
                return
            current = self._objects.get(namespace, {}).get(key)
            if current is None or _rv(current) <= _rv(plain):
                self._objects.get(namespace, {}).pop(key, None)
                if _rv(plain):
                    self._gone.setdefault(namespace, {})[key] = _rv(plain)

    def _put(self, namespace: str, key: Key, body: Body) -> None:
        if _rv(body) <= self._gone.get(namespace, {}).get(key, -1):
            return
        objects = self._objects.setdefault(namespace, {})
        current = objects.get(key)
        if current is None or _rv(current) <= _rv(body):
            objects[key] = body


def _rv(body: Mapping[str, Any]) -> int:
    """The resourceVersion as a number (0 when missing or not numeric: such a body is never newer)."""
    value = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else 0
