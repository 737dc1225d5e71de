"""The adacot resources of each namespace as the operator last saw them, kept from kopf's watch events
and parsed once per resourceVersion.

Why: a reconcile needs the namespace's dependency graph (a GradingRun names its bank with `bankRef`, so
a bank's inputs are only found by looking at every GradingRun). Listing the four kinds and validating
every body on every reconcile made each one cost O(resources in the namespace) in API calls and in
pydantic (~40 us a body). Instead each namespace is listed once, on its first reconcile (the seed:
kopf's initial events alone do not say when they are complete), kept current from the watch events the
handlers see, and each body is parsed when it arrives.

Only the graph comes from here: a reconcile reads its own resource and its producers with fresh GETs,
so a producer's just-written phase is never missed. Ordering: an entry is replaced only by a newer
resourceVersion (numeric: the API server's are etcd revisions; arrival order otherwise) and a deletion
leaves a tombstone, so a seed list that raced with a delete does not resurrect the object. A stale
entry is harmless: its fresh GET returns nothing, as a missing producer does. The parsed models are
shared between reconciles: never mutate one.

Callers: adacot_operator.handlers (`observe` from each resource event, `models` on each reconcile,
with the seed listing and the parse function passed in). Imports neither kopf nor the kubernetes
client: bodies arrive as plain mappings, and the one API call (the seed) is the caller's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from adacot_operator.status import Key

Model = TypeVar("Model")


class NamespaceCache(Generic[Model]):
    """Thread-safe (kopf runs sync handlers in a thread pool). `parse(kind, body)` gives the model of a
    body, or None when it does not validate (such a resource is left out of the graph)."""

    def __init__(self, parse: Callable[[str, Mapping[str, Any]], Model | None]) -> None:
        self._parse = parse
        self._entries: dict[str, dict[Key, tuple[int, Model | None]]] = {}
        self._gone: dict[str, dict[Key, int]] = {}
        self._seeded: set[str] = set()
        self._lock = threading.Lock()

    def models(self, namespace: str, seed: Callable[[], Mapping[Key, Mapping[str, Any]]]) -> dict[Key, Model]:
        """The namespace's valid resources; `seed` lists them the first time the namespace is asked for."""
        with self._lock:
            seeded = namespace in self._seeded
        if not seeded:
            listed = seed()  # outside the lock: an API call
            for (kind, _), body in listed.items():
                self.observe(kind, namespace, body)
            with self._lock:
                self._seeded.add(namespace)
        with self._lock:
            entries = self._entries.get(namespace, {})
            return {key: model for key, (_, model) in entries.items() if model is not None}

    def resources(self) -> list[tuple[str, str, str]]:
        """(namespace, kind, name) of every resource held, valid or not (the handlers' periodic resync)."""
        with self._lock:
            return [(ns, kind, name) for ns, entries in self._entries.items() for kind, name in entries]

    def observe(self, kind: str, namespace: str, body: Mapping[str, Any], deleted: bool = False) -> None:
        """A watch event of one resource (ADDED, MODIFIED, DELETED, or kopf's initial listing)."""
        key, version = (kind, str(body["metadata"]["name"])), _rv(body)
        with self._lock:
            entries = self._entries.setdefault(namespace, {})
            current = entries.get(key)
            if current is not None and (current[0] > version or (version and current[0] == version)):
                return  # an older event or list than what is held, or the same version again
            if deleted:
                entries.pop(key, None)
                if version:
                    self._gone.setdefault(namespace, {})[key] = version
                return
            if version <= self._gone.get(namespace, {}).get(key, -1):
                return
        model = self._parse(kind, body)  # outside the lock: pydantic
        with self._lock:
            current = entries.get(key)
            newer = current is None or current[0] <= version
            if newer and version > self._gone.get(namespace, {}).get(key, -1):
                entries[key] = (version, model)


def _rv(body: Mapping[str, Any]) -> int:
    """The resourceVersion as a number (0 when missing or not numeric: such a body is never newer)."""
    value = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else 0
