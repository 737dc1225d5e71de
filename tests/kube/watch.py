"""Watch streams: `GET ...?watch=true` answered as a chunked JSON stream of {"type", "object"} lines.

Called by app.py. Semantics as the API server's watch cache has them: resourceVersion "" or "0" starts
with an ADDED event per existing object, a given resourceVersion replays the history after it (410
Expired as an ERROR event when it is older than the history kept), `sendInitialEvents=true` ends the
initial events with the `k8s.io/initial-events-end` BOOKMARK, timeoutSeconds closes the stream, an
object that stops matching the selectors is sent as DELETED and one that starts matching as ADDED,
and with Accept `as=Table` (kubectl get -w) each object is a one-row Table (column definitions in the
first event only). Limits: no periodic bookmarks; the selector bookkeeping of a resumed watch starts
from the objects matching now, not from those that matched at the given resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp.web

from . import errors
from .resources import ResourceType
from .store import Event, Obj, Store
from .tables import table

WATCH_DEFAULT_TIMEOUT_S = 1800


class WatchStream:
    def __init__(
        self, store: Store, rt: ResourceType, namespace: str | None, query: Any, accept: str
    ) -> None:
        self.store, self.rt, self.namespace, self.query = store, rt, namespace, query
        self.match: Callable[[Obj], bool] = store.matcher(
            rt, namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        self.as_table, self.first = "as=Table" in accept, True
        self.seen = {_ident(o) for o in store.list_objects(rt, namespace) if self.match(o)}
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def _listener(self, event: Event) -> None:
        if event.key == self.rt.key:
            self.queue.put_nowait(event)

    def _start(self) -> list[tuple[str, Obj]]:
        """The events to send first; subscribes in the same step (no await: nothing missed or repeated)."""
        store, since = self.store, self.query.get("resourceVersion", "")
        try:
            history = [] if since in ("", "0") else store.events_since(int(since))
            backlog = [e for e in history if e.key == self.rt.key]
        except (errors.ApiError, ValueError) as exc:
            status = (
                exc.status() if isinstance(exc, errors.ApiError) else errors.bad_request(str(exc)).status()
            )
            return [("ERROR", status)]
        store.listeners.append(self._listener)
        if since not in ("", "0"):
            return [(t, o) for t, o in (self._classify(e, replay=True) for e in backlog) if t]
        initial = [("ADDED", o) for o in store.list_objects(self.rt, self.namespace) if self.match(o)]
        if self.query.get("sendInitialEvents") == "true":
            marker = {
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version,
                "metadata": {
                    "resourceVersion": str(store.rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            initial.append(("BOOKMARK", marker))
        return initial

    def _classify(self, event: Event, replay: bool) -> tuple[str | None, Obj]:
        obj = self.store.render(self.rt, event.obj)
        ident, matches = _ident(obj), self.match(obj)
        if replay:
            kind = event.type if matches else None
        elif event.type == "DELETED":
            kind = "DELETED" if ident in self.seen or matches else None
        elif matches:
            kind = event.type if ident in self.seen or event.type == "ADDED" else "ADDED"
        else:
            kind = "DELETED" if ident in self.seen else None
        if kind == "DELETED":
            self.seen.discard(ident)
        elif kind:
            self.seen.add(ident)
        return kind, obj

    async def serve(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        first = self._start()
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(raw)
            for kind, obj in first:
                await self._write(response, kind, obj)
            if first and first[0][0] == "ERROR":
                return response
            timeout = float(self.query.get("timeoutSeconds") or WATCH_DEFAULT_TIMEOUT_S)
            await asyncio.wait_for(self._pump(response), timeout)
        except (asyncio.TimeoutError, ConnectionResetError):
            pass
        finally:
            if self._listener in self.store.listeners:
                self.store.listeners.remove(self._listener)
        return response

    async def _pump(self, response: aiohttp.web.StreamResponse) -> None:
        while True:
            kind, obj = self._classify(await self.queue.get(), replay=False)
            if kind:
                await self._write(response, kind, obj)

    async def _write(self, response: aiohttp.web.StreamResponse, kind: str, obj: Obj) -> None:
        if self.as_table and kind not in ("ERROR", "BOOKMARK"):
            obj = table(
                self.rt,
                [obj],
                obj["metadata"]["resourceVersion"],
                self.query.get("includeObject", "Metadata"),
            )
            if not self.first:
                obj["columnDefinitions"] = []
            self.first = False
        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")


def _ident(obj: Obj) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
