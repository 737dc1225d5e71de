"""PATCH bodies by content type: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
patch (what kubectl sends for built-in kinds) and apply patches (server-side apply).

Called by store.py. Strategic merge patch knows the merge keys of the list fields kubectl apply touches
on the kinds the emulator serves (containers, env, volumes, volumeMounts, ports, conditions,
ownerReferences, finalizers...) and the `$patch`, `$retainKeys`, `$setElementOrder` and
`$deleteFromPrimitiveList` directives; other lists are replaced, as for types without patch metadata.
Server-side apply is approximated as a merge patch (no managedFields, no field ownership conflicts).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def apply_patch(obj: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """`obj` with `patch` applied; raises ApiError for an unsupported type or a malformed patch."""
    kind = content_type.split(";")[0].strip()
    if kind == "application/json-patch+json":
        return json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise bad_request(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml"
        )
    if kind in ("application/merge-patch+json", "application/apply-patch+yaml"):
        return dict(merge_patch(obj, patch))
    if kind == "application/strategic-merge-patch+json":
        return dict(strategic_merge(obj, patch))
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - "
        "accepted media types include: application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml, application/strategic-merge-patch+json",
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch of one value; `field` is the name the value has in its parent."""
    if isinstance(patch, list):
        return _merge_list(target if isinstance(target, list) else [], patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return copy.deepcopy(patch)
    if directive == "delete":
        return None
    retain = patch.pop("$retainKeys", None)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
        elif value is None:
            result.pop(key, None)
        else:
            merged = strategic_merge(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field in MERGED_PRIMITIVE_LISTS:
        return target + [v for v in patch if v not in target]
    key = MERGE_KEYS.get(field) or _ports_key(field, patch)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        index = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            result = [old for old in result if old.get(key) != item.get(key)]
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _ports_key(field: str, patch: list[Any]) -> str | None:
    if field != "ports" or not patch or not isinstance(patch[0], dict):
        return None
    return "containerPort" if "containerPort" in patch[0] else "port"


def json_patch(obj: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/move/copy/test on a copy of `obj`."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(obj)
    for op in operations:
        name, path = op.get("op"), op.get("path", "")
        if name in ("move", "copy"):
            value = _get(doc, op["from"])
            if name == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, copy.deepcopy(value))
        elif name == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif name == "remove":
            doc = _remove(doc, path)
        elif name == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op.get("value")))
        elif name == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed",
                )
        else:
            raise bad_request(f"Unexpected kind: {name}")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(
            f"the server rejected our request due to an error in our request: invalid path {path!r}"
        )
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    *head, last = _tokens(path)
    for token in head:
        doc = doc[int(token)] if isinstance(doc, list) else doc.get(token) if isinstance(doc, dict) else None
        if doc is None:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: "
                f"doc is missing path: {path!r}",
            )
    return doc, last


def _get(doc: Any, path: str) -> Any:
    if not _tokens(path):
        return doc
    parent, last = _parent(doc, path)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: doc is missing key: {path!r}",
        ) from None


def _add(doc: Any, path: str, value: Any) -> Any:
    if not _tokens(path):
        return value
    parent, last = _parent(doc, path)
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, path: str) -> Any:
    _get(doc, path)
    parent, last = _parent(doc, path)
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc
