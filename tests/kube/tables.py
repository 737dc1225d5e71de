"""meta.k8s.io/v1 Table responses, what `kubectl get` asks for (Accept: ...;as=Table;g=meta.k8s.io).

Called by app.py for list and get requests. Custom resources: Name plus the CRD version's
additionalPrinterColumns (JSONPath; `date` columns rendered as the server does, a human duration such
as "5m"; a missing value is null, which kubectl prints as an empty cell), or Name and Age when the CRD
declares none. Built-in kinds get Name, their main kind-specific columns and Age (a real server's
printers have more: wide-only and rarely read columns are not reproduced). Rows carry the object as
`includeObject` asks (Metadata by default: a PartialObjectMetadata).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .resources import ResourceType

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
AGE = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": "CreationTimestamp is a timestamp representing the server time when this object was "
    "created.",
}


def _col(name: str, compute: Any, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": kind, "compute": compute, "priority": priority}


def _count(*fields: str) -> Any:
    return lambda o: sum(len(o.get(f) or {}) for f in fields)


def _pod_status(pod: dict[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        reason = (state.get("terminated") or state.get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    return str((pod.get("status") or {}).get("phase", ""))


def _job_status(job: dict[str, Any]) -> str:
    true = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    return next(
        (t for t in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet") if t in true),
        "Running",
    )


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


BUILTIN_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Namespace": [_col("Status", lambda o: (o.get("status") or {}).get("phase"))],
    "ConfigMap": [_col("Data", _count("data", "binaryData"), "integer")],
    "Secret": [_col("Type", lambda o: o.get("type")), _col("Data", _count("data"), "integer")],
    "Pod": [
        _col(
            "Ready",
            lambda o: (
                f"{sum(bool(s.get('ready')) for s in _statuses(o))}/"
                f"{len((o.get('spec') or {}).get('containers') or [])}"
            ),
        ),
        _col("Status", _pod_status),
        _col("Restarts", lambda o: sum(s.get("restartCount", 0) for s in _statuses(o)), "integer"),
    ],
    "Job": [
        _col("Status", _job_status),
        _col(
            "Completions",
            lambda o: (
                f"{(o.get('status') or {}).get('succeeded', 0)}/{(o.get('spec') or {}).get('completions', 1)}"
            ),
        ),
    ],
    "PersistentVolumeClaim": [
        _col("Status", lambda o: (o.get("status") or {}).get("phase")),
        _col("Volume", lambda o: (o.get("spec") or {}).get("volumeName", "")),
    ],
    "Service": [
        _col("Type", lambda o: (o.get("spec") or {}).get("type")),
        _col("Cluster-IP", lambda o: (o.get("spec") or {}).get("clusterIP")),
    ],
    "Event": [
        _col("Type", lambda o: o.get("type")),
        _col("Reason", lambda o: o.get("reason")),
        _col(
            "Object",
            lambda o: "/".join(
                str((o.get("involvedObject") or o.get("regarding") or {}).get(k, ""))
                for k in ("kind", "name")
            ).lower(),
        ),
        _col("Message", lambda o: o.get("message") or o.get("note")),
    ],
    "Lease": [_col("Holder", lambda o: (o.get("spec") or {}).get("holderIdentity", ""))],
}


def columns_of(rt: ResourceType) -> list[dict[str, Any]]:
    if rt.crd is not None:
        return list(rt.crd.get("additionalPrinterColumns") or [AGE])
    return [*BUILTIN_COLUMNS.get(rt.kind, []), AGE]


def table(
    rt: ResourceType, items: list[dict[str, Any]], resource_version: str, include: str = "Metadata"
) -> dict[str, Any]:
    columns = columns_of(rt)
    name_column = (
        {**NAME_COLUMN, "priority": 1} if rt.kind == "Event" else NAME_COLUMN
    )  # events lead with type
    definitions = [name_column] + [
        {
            "name": c["name"],
            "type": c["type"],
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = [
        {"cells": [o["metadata"]["name"]] + [cell(o, c) for c in columns], **_row_object(o, include)}
        for o in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any]:
    if include == "None":
        return {}
    if include == "Object":
        return {"object": obj}
    return {
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }
    }


def cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    if "compute" in column:
        return column["compute"](obj)
    values = jsonpath(obj, column["jsonPath"])
    if not values or values[0] is None:
        return None
    value = values[0]
    if column["type"] == "date" and isinstance(value, str):
        return human_duration(value)
    if column["type"] == "string" and not isinstance(value, str):
        return str(value)
    return value


_STEP = re.compile(r"\.([\w-]+)|\[(-?\d+):?(-?\d*)\]|\[\?\(@\.([\w.]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The values at a printer-column JSONPath (.a.b, [n], [n:m], [?(@.k=="v")])."""
    current = [obj]
    for m in _STEP.finditer(path.strip("{}")):
        field, start, end, key, wanted = m.groups()
        found: list[Any] = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                found.append(value[field])
            elif start is not None and isinstance(value, list):
                found += (
                    value[int(start) : int(end) if end else None]
                    if ":" in m.group(0)
                    else value[int(start) :][:1]
                )
            elif key is not None and isinstance(value, list):
                found += [
                    v
                    for v in value
                    if str(jsonpath(v, "." + key)[:1] and jsonpath(v, "." + key)[0]) == wanted
                ]
        current = found
    return current


def human_duration(timestamp: str) -> str:
    """apimachinery's duration.HumanDuration of the time since `timestamp`."""
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = int((datetime.now(timezone.utc) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days < 365 * 8 and days % 365 else f"{days // 365}y"
