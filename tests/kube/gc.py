"""Garbage collection and the namespace controller, run synchronously after every write to the store.

Mixed into store.Store (which owns the objects and the write primitives named below). A real cluster
does this in controllers a moment later; here it happens before the write returns, so tests see the
end state at once. Rules as in kube-controller-manager: a dependent whose owners (by uid) are all gone
is deleted (Background); an owner in Foreground deletion keeps its `foregroundDeletion` finalizer until
its dependents are gone; Orphan strips the owner reference from dependents; a terminating namespace
deletes its content and goes once it is empty. Limits: blockOwnerDeletion is not distinguished (every
dependent holds a foreground owner), no cross-namespace owner checks.
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import ResourceType

Key = tuple[str, str]
Obj = dict[str, Any]


class GarbageCollector:
    objects: dict[Key, dict[tuple[str, str], Obj]]
    uids: dict[str, tuple[Key, tuple[str, str]]]
    types: dict[tuple[str, str, str], ResourceType]

    def delete(self, rt: ResourceType, ns: str, name: str, options: Obj | None = None) -> Obj:
        raise NotImplementedError

    def _store(self, rt: ResourceType, obj: Obj, kind: str) -> None:
        raise NotImplementedError

    def _remove(self, rt: ResourceType, obj: Obj) -> None:
        raise NotImplementedError

    def _type_of(self, key: Key) -> ResourceType:
        return next(rt for rt in self.types.values() if rt.key == key)

    def _all(self) -> list[tuple[ResourceType, Obj]]:
        return [
            (self._type_of(k), o) for k, objs in self.objects.items() if objs for o in list(objs.values())
        ]

    def _dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        return [
            (rt, o)
            for rt, o in self._all()
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))
        ]

    def _orphan(self, uid: str) -> None:
        for rt, obj in self._dependents(uid):
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = [
                r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid
            ]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._store(rt, new, "MODIFIED")

    def _sweep(self) -> None:
        """Run the garbage collector and namespace controller until nothing changes."""
        while self._sweep_once():
            pass

    def _sweep_once(self) -> bool:
        for rt, obj in self._all():
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") and self._finish_deletion(rt, obj):
                return True
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp") and not any(self._owner_alive(r) for r in refs):
                self.delete(rt, meta.get("namespace", ""), meta["name"])
                return True
        return False

    def _owner_alive(self, ref: Obj) -> bool:
        found = self.uids.get(ref.get("uid", ""))
        if found is None:
            return False
        owner = self.objects[found[0]][found[1]]
        return "foregroundDeletion" not in owner["metadata"].get("finalizers", [])

    def _finish_deletion(self, rt: ResourceType, obj: Obj) -> bool:
        meta = obj["metadata"]
        if rt.kind == "Namespace":
            inside = [
                (t, o)
                for t, o in self._all()
                if t.namespaced and o["metadata"].get("namespace") == meta["name"]
            ]
            for t, o in inside:
                if not o["metadata"].get("deletionTimestamp"):
                    self.delete(t, meta["name"], o["metadata"]["name"])
                    return True
            if not inside:
                self._remove(rt, obj)
                return True
            return False
        if "foregroundDeletion" in meta.get("finalizers", []) and not self._dependents(meta["uid"]):
            new = copy.deepcopy(obj)
            new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != "foregroundDeletion"]
            if new["metadata"]["finalizers"]:
                self._store(rt, new, "MODIFIED")
            else:
                del new["metadata"]["finalizers"]
                self._remove(rt, new)
            return True
        return False
