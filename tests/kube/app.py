"""HTTP front of the emulator: URL routing, verbs, content negotiation, watch streams, request log.

Built on kmock: its `Server` (an aiohttp server on a real port) and `RawHandler` as the handler base.
Its request parsing and routing are not used: the path parser fails on /api/v1/namespaces, the DSL
matches every request against every registered reaction and filter over the whole history
(quadratic), and its KubernetesEmulator lacks the semantics in store.py (uid, resourceVersion,
status subresource, conflicts, validation, GC...); `ApiServer.__call__` dispatches straight to the store.
Called by server.py. Each request is logged as one JSON line (method, path, verb, resource, namespace,
name, subresource, user agent, code) for RBAC checks; bodies and headers other than the user agent are
never logged, so secrets stay out of the log. Limits: no authentication or authorization (any
bearer token is accepted), protobuf request bodies only for the kinds protobuf.py decodes, no
pagination (limit is ignored, no `continue`), no subresources but /status
(no pods/log: the local kubelet keeps container output itself). Watch streams: watch.py.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from . import discovery, errors, protobuf
from .resources import ResourceType
from .store import Store
from .tables import table
from .watch import WatchStream

JSON_LIKE = frozenset(
    {
        "application/json",
        "application/yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/octet-stream",
        "text/plain",
    }
)


@attrs.define(kw_only=True)
class ApiServer(kmock.RawHandler):
    """The emulator's handler: one Store, one request log file."""

    store: Store = attrs.field(factory=Store)
    log_path: Path | None = None
    address: str = "127.0.0.1"

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Serve one request. Replaces RawHandler's entry point, whose kmock.Request parsing fails on
        paths such as /api/v1/namespaces and which keeps every request for its DSL."""
        route = Route()
        try:
            route = Route.parse(self.store, raw.method, raw.path, dict(raw.query))
            if route.rt is None:
                response = self._discovery(raw.path, raw.headers.get("Accept", ""))
            elif route.verb == "watch":
                self._log(raw, route, 200)
                return await self._watch(raw, route)
            elif raw.query.get("dryRun") == "All":
                data = await _read_body(raw)
                with self.store.dry_run():
                    response = self._resource(raw, route, data)
            else:
                response = self._resource(raw, route, await _read_body(raw))
        except errors.ApiError as exc:
            response = json_response(exc.status(), exc.code)
        except Exception as exc:
            response = json_response(
                errors.ApiError(500, "InternalError", f"emulator error: {exc!r}").status(), 500
            )
            traceback.print_exc()
        self._log(raw, route, response.status)
        return response

    def _log(self, raw: aiohttp.web.BaseRequest, route: Route, code: int) -> None:
        if self.log_path is None:
            return
        entry = {
            "method": raw.method,
            "path": raw.path,
            "verb": route.verb,
            "group": route.group,
            "resource": route.plural,
            "namespace": route.namespace,
            "name": route.name,
            "subresource": route.subresource,
            "query": dict(raw.query),
            "user_agent": raw.headers.get("User-Agent", ""),
            "code": code,
        }
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    # -- discovery -------------------------------------------------------------------------------
    def _discovery(self, path: str, accept: str) -> aiohttp.web.Response:
        types = list(self.store.types.values())
        parts = [p for p in path.split("/") if p]
        found: Any = None
        if parts in (["api"], ["apis"]) and "as=APIGroupDiscoveryList" in accept:
            body = json.dumps(discovery.aggregated(types, legacy=parts == ["api"]))
            return aiohttp.web.Response(body=body.encode(), headers={"Content-Type": discovery.AGGREGATED})
        if parts == ["version"]:
            found = discovery.VERSION
        elif parts == ["api"]:
            found = discovery.api_versions(self.address)
        elif parts == ["apis"]:
            found = discovery.api_groups(types)
        elif parts == ["openapi", "v3"]:
            found = discovery.openapi_root(types)
        elif parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            gv = parts[3:] if parts[2] == "api" else parts[3:5] if parts[2] == "apis" else []
            found = (
                discovery.openapi_document(types, *(["", gv[0]] if parts[2] == "api" else gv)) if gv else None
            )
        elif len(parts) == 2 and parts[0] == "api":
            found = discovery.resource_list(types, "", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            found = discovery.resource_list(types, parts[1], parts[2])
        elif len(parts) == 2 and parts[0] == "apis":
            versions = discovery._group_versions(types).get(parts[1])
            found = discovery.api_group(parts[1], versions) if versions else None
        elif parts in (["healthz"], ["livez"], ["readyz"]):
            return aiohttp.web.Response(text="ok")
        if found is None:
            raise errors.page_not_found()
        return json_response(found)

    # -- resources -------------------------------------------------------------------------------
    def _resource(self, raw: aiohttp.web.BaseRequest, route: Route, data: Any) -> aiohttp.web.Response:
        rt, ns, name, query = route.rt, route.namespace or "", route.name or "", raw.query
        assert rt is not None
        strictness = query.get("fieldValidation", "Warn")
        store = self.store
        if route.subresource not in (None, "status") or (route.subresource and not rt.status):
            raise errors.page_not_found()  # pods/log, exec, scale...: no kubelet or controller behind them
        if route.verb == "get":
            return self._render(raw, rt, [store.get(rt, ns, name)], single=True)
        if route.verb == "list":
            items = store.list_objects(
                rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector")
            )
            return self._render(raw, rt, items, single=False)
        if route.verb == "create":
            obj, warnings = store.create(rt, ns, _body(data), strictness)
            return json_response(obj, 201, warnings)
        if route.verb == "update":
            obj, warnings = store.update(rt, ns, name, _body(data), route.subresource, strictness)
            return json_response(obj, 200, warnings)
        if route.verb == "patch" and raw.content_type == "application/apply-patch+yaml":
            return self._server_side_apply(rt, ns, name, data, route.subresource, strictness)
        if route.verb == "patch":
            obj, warnings = store.patch(rt, ns, name, data, raw.content_type, route.subresource, strictness)
            return json_response(obj, 200, warnings)
        if route.verb == "delete":
            return json_response(
                store.delete(rt, ns, name, data if isinstance(data, dict) else _delete_options(raw))
            )
        if route.verb == "deletecollection":
            items = store.list_objects(
                rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector")
            )
            for item in items:
                store.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"])
            return json_response(_list(rt, items, str(store.rv)))
        raise errors.method_not_allowed()

    def _server_side_apply(
        self, rt: ResourceType, ns: str, name: str, data: Any, subresource: str | None, strictness: str
    ) -> aiohttp.web.Response:
        """Apply patches create what is missing (201) and merge into what exists (200)."""
        try:
            self.store.get(rt, ns, name)
        except errors.ApiError as exc:
            if exc.code != 404 or subresource:
                raise
            obj, warnings = self.store.create(rt, ns, _body(data), strictness)
            return json_response(obj, 201, warnings)
        obj, warnings = self.store.patch(
            rt, ns, name, data, "application/apply-patch+yaml", subresource, strictness
        )
        return json_response(obj, 200, warnings)

    def _render(
        self, raw: aiohttp.web.BaseRequest, rt: ResourceType, items: list[dict[str, Any]], single: bool
    ) -> aiohttp.web.Response:
        accept = raw.headers.get("Accept", "")
        if "as=Table" in accept:
            include = raw.query.get("includeObject", "Metadata")
            return json_response(table(rt, items, str(self.store.rv), include))
        return json_response(items[0] if single else _list(rt, items, str(self.store.rv)))

    # -- watch -----------------------------------------------------------------------------------
    async def _watch(self, raw: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        assert route.rt is not None
        query = dict(raw.query)
        if route.name:  # the legacy watch of one object: GET .../name?watch=true
            query["fieldSelector"] = ",".join(
                f for f in (query.get("fieldSelector"), f"metadata.name={route.name}") if f
            )
        stream = WatchStream(self.store, route.rt, route.namespace, query, raw.headers.get("Accept", ""))
        return await stream.serve(raw)


@attrs.frozen
class Route:
    """What a URL names: the type (None for discovery), namespace, name, subresource and verb."""

    verb: str | None = None
    group: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    rt: ResourceType | None = None

    @classmethod
    def parse(cls, store: Store, method: str, path: str, query: dict[str, str]) -> Route:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return cls()
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in store.types:
            namespace, rest = rest[1], rest[2:]
        plural, name, subresource = [*rest, None, None][:3]
        rt = store.resolve(group, version, plural or "")
        verb = _verb(method, name, query)
        return cls(verb, group, plural, namespace, name, subresource, rt)


def _verb(method: str, name: str | None, query: dict[str, str]) -> str:
    if method == "GET":
        return "watch" if query.get("watch") in ("true", "1") else "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method not in verbs or (name is None) != (method == "POST"):
        raise errors.method_not_allowed()
    return verbs[method]


def _list(rt: ResourceType, items: list[dict[str, Any]], rv: str) -> dict[str, Any]:
    if rt.crd is None:  # typed lists of built-in kinds carry no kind/apiVersion per item
        items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
    return {
        "kind": f"{rt.kind}List",
        "apiVersion": rt.api_version,
        "metadata": {"resourceVersion": rv},
        "items": items,
    }


async def _read_body(raw: aiohttp.web.BaseRequest) -> Any:
    """The request body as JSON data. Other encodings (CBOR) are refused with 415, on which client-go
    falls back to JSON, as against a server that does not serve them."""
    data = await raw.read()
    if raw.content_type == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(data)
    if data and raw.content_type not in JSON_LIKE:
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - "
            f"accepted media types include: {', '.join(sorted(JSON_LIKE))}",
        )
    return _parse(data.decode("utf-8"))


def _body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise errors.bad_request("the object provided is unrecognized (must be of type Object)")
    return data


def _parse(text: str) -> Any:
    """A JSON body, or YAML (apply patches are application/apply-patch+yaml)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from None


def _delete_options(raw: aiohttp.web.BaseRequest) -> dict[str, Any]:
    return {k: raw.query[k] for k in ("propagationPolicy",) if k in raw.query}


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> aiohttp.web.Response:
    escaped = [w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings or []]
    headers = {"Warning": ", ".join(f'299 - "{w}"' for w in escaped)} if escaped else None
    return aiohttp.web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )
