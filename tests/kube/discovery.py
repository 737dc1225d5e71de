"""Discovery documents: /version, /api, /apis, /api/v1, /apis/<group>[/<version>], and OpenAPI v3.

Called by app.py. /api and /apis answer in the aggregated form (apidiscovery.k8s.io/v2, one request
for every group's resources) to clients that ask for it in Accept, as kubectl does, and in the legacy
form (APIVersions, APIGroupList, then one APIResourceList per group-version) to the others.
OpenAPI v3 (/openapi/v3 and one document per group-version) lists each resource's paths, with the
`fieldValidation` query parameter on create/update/patch so kubectl leaves `--validate=strict` to the
server (the emulator then answers with the server's own messages), and for custom resources the CRD
schema under components (what `kubectl explain` reads). Built-in kinds get a free-form schema there:
no client-side validation or OpenAPI-driven patch metadata for them. No /openapi/v2 (kubectl
wants it as protobuf): `kubectl apply` of a `kind: List` document, which kubectl validates on its own
side, fails; multi-document YAML or a stream of JSON objects apply fine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ALL_VERBS, ResourceType

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "emulator",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _group_versions(types: list[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in types:
        if rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_groups(types: list[ResourceType]) -> dict[str, Any]:
    groups = [api_group(g, vs) for g, vs in _group_versions(types).items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    mine = [rt for rt in types if rt.group == group and rt.version == version]
    if not mine:
        return None
    resources: list[dict[str, Any]] = []
    for rt in mine:
        entry = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(ALL_VERBS),
        }
        entry.update(
            {k: list(v) for k, v in (("shortNames", rt.short_names), ("categories", rt.categories)) if v}
        )
        resources.append(entry)
        if rt.status:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def aggregated(types: list[ResourceType], legacy: bool) -> dict[str, Any]:
    """APIGroupDiscoveryList of the core group (legacy=True, for /api) or of the named groups (/apis)."""
    groups = _group_versions(types)
    items = [
        {"metadata": {"name": group}, "versions": [_aggregated_version(types, group, v) for v in versions]}
        for group, versions in groups.items()
        if (group == "") == legacy
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def _aggregated_version(types: list[ResourceType], group: str, version: str) -> dict[str, Any]:
    resources = []
    for rt in (t for t in types if t.group == group and t.version == version):
        kind = {"group": group, "version": version, "kind": rt.kind}
        entry: dict[str, Any] = {
            "resource": rt.plural,
            "responseKind": kind,
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "singularResource": rt.singular,
            "verbs": list(ALL_VERBS),
        }
        entry.update(
            {k: list(v) for k, v in (("shortNames", rt.short_names), ("categories", rt.categories)) if v}
        )
        if rt.status:
            entry["subresources"] = [
                {"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}
            ]
        resources.append(entry)
    return {"version": version, "resources": resources, "freshness": "Current"}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_root(types: list[ResourceType]) -> dict[str, Any]:
    paths = {}
    for group, versions in _group_versions(types).items():
        for version in versions:
            doc = json.dumps(openapi_document(types, group, version), sort_keys=True).encode()
            digest = hashlib.sha512(doc).hexdigest()[:32].upper()
            paths[_gv_path(group, version)] = {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
            }
    return {"paths": paths}


def schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def openapi_document(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    mine = [rt for rt in types if rt.group == group and rt.version == version]
    if not mine:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in mine:
        paths.update(_paths(rt))
        schemas[schema_name(rt)] = _schema(rt)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _schema(rt: ResourceType) -> dict[str, Any]:
    gvk = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    base = rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    properties = {
        **(base.get("properties") or {}),
        "apiVersion": {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
        "kind": {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
        "metadata": {"type": "object", "description": "Standard object's metadata."},
    }
    return {**base, "properties": properties, "x-kubernetes-group-version-kind": gvk}


def _operation(rt: ResourceType, action: str, validated: bool) -> dict[str, Any]:
    params = [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in (("dryRun", "fieldManager", "fieldValidation") if validated else ("pretty",))
    ]
    ref = {"$ref": f"#/components/schemas/{schema_name(rt)}"}
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }
    if action == "patch":
        types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in types}}
    elif action in ("post", "put"):
        op["requestBody"] = {"content": {"application/json": {"schema": ref}}}
    return op


def _paths(rt: ResourceType) -> dict[str, Any]:
    prefix = "/" + _gv_path(rt.group, rt.version) + ("/namespaces/{namespace}" if rt.namespaced else "")
    collection = f"{prefix}/{rt.plural}"
    paths = {
        collection: {"get": _operation(rt, "list", False), "post": _operation(rt, "post", True)},
        collection + "/{name}": {
            "get": _operation(rt, "get", False),
            "put": _operation(rt, "put", True),
            "patch": _operation(rt, "patch", True),
            "delete": _operation(rt, "delete", False),
        },
    }
    if rt.status:
        paths[collection + "/{name}/status"] = {
            "get": _operation(rt, "get", False),
            "put": _operation(rt, "put", True),
            "patch": _operation(rt, "patch", True),
        }
    return paths
