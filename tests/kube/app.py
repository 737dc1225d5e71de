"""HTTP front of the emulator: URL routing, verbs, content negotiation, watch streams, request log.

Built on kmock: its `Server` (aiohttp test server on a real port) and `RawHandler` (request capture,
errors rendered instead of dropped connections). kmock's own routing is not used: it matches every
request against every registered reaction and filter over the whole history (quadratic), and its
KubernetesEmulator lacks the semantics in store.py; here `_handle` dispatches straight to the store.
Called by server.py. Each request is logged as one JSON line (method, path, verb, resource, namespace,
name, subresource, user agent, code) for RBAC checks; bodies and headers other than the user agent are
never logged, so secrets stay out of the log. Limits: no authentication or authorization (any
bearer token is accepted), no protobuf, no pagination (limit is ignored, no `continue`), no
aggregated discovery, watch bookmarks only as a first BOOKMARK when asked for with sendInitialEvents.
"""

from __future__ import annotations

import asyncio
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
from .store import Event, Store
from .tables import table

WATCH_DEFAULT_TIMEOUT_S = 1800


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
                response = self._discovery(raw.path)
            elif route.verb == "watch":
                self._log(raw, route, 200)
                return await self._watch(raw, route)
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
    def _discovery(self, path: str) -> aiohttp.web.Response:
        types = list(self.store.types.values())
        parts = [p for p in path.split("/") if p]
        found: Any = None
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
        rt, query, store = route.rt, raw.query, self.store
        assert rt is not None
        fields = ",".join(
            f for f in (query.get("fieldSelector"), route.name and f"metadata.name={route.name}") if f
        )
        match = store.matcher(rt, route.namespace, query.get("labelSelector"), fields)
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def listener(event: Event) -> None:
            if event.key == rt.key:
                queue.put_nowait(event)

        since = query.get("resourceVersion", "")
        try:  # no await between subscribing and reading the state: nothing is missed or repeated
            backlog = [] if since in ("", "0") else store.events_since(int(since))
            initial = (
                [Event(store.rv, "ADDED", rt.key, o) for o in store.list_objects(rt, route.namespace)]
                if since in ("", "0")
                else []
            )
        except errors.ApiError as exc:
            backlog, initial = [], [Event(0, "ERROR", rt.key, exc.status())]
        store.listeners.append(listener)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        seen = {_ident(o) for o in store.list_objects(rt, route.namespace) if match(o)}
        try:
            for event in initial + backlog:
                await _send(response, rt, store, event, match, seen, replay=True)
            timeout = float(query.get("timeoutSeconds") or WATCH_DEFAULT_TIMEOUT_S)
            await asyncio.wait_for(self._pump(response, rt, queue, match, seen), timeout)
        except (asyncio.TimeoutError, ConnectionResetError):
            pass
        finally:
            store.listeners.remove(listener)
        return response

    async def _pump(
        self,
        response: aiohttp.web.StreamResponse,
        rt: ResourceType,
        queue: asyncio.Queue[Event],
        match: Any,
        seen: set[tuple[str, str]],
    ) -> None:
        while True:
            await _send(response, rt, self.store, await queue.get(), match, seen, replay=False)


async def _send(
    response: aiohttp.web.StreamResponse,
    rt: ResourceType,
    store: Store,
    event: Event,
    match: Any,
    seen: set[tuple[str, str]],
    replay: bool,
) -> None:
    """Write one watch event; an object leaving the selection is DELETED, one entering it ADDED."""
    if event.type == "ERROR":
        kind, obj = "ERROR", event.obj
    else:
        obj, ident = store.render(rt, event.obj), _ident(event.obj)
        kind = event.type
        if match(obj) and kind != "DELETED":
            kind = "ADDED" if ident not in seen and not replay else kind
            seen.add(ident)
        elif ident in seen or (replay and match(obj)):
            kind = "DELETED"
            seen.discard(ident)
        else:
            return
    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")


def _ident(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


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
    data = await raw.read()
    if raw.content_type == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(data)
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
