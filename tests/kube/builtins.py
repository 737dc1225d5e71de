"""What the API server itself adds to and checks on built-in kinds (its registry strategies), for the
kinds the operator creates: Jobs, Pods, PersistentVolumeClaims, Services and Secrets.

Called by store.py on create and update. Jobs get the server-generated selector and the controller-uid
and job-name labels on their pod template, the batch/v1 defaults (parallelism, completions,
backoffLimit, completionMode, suspend), the restartPolicy check and the immutability of
spec.template/selector/completionMode; Pods start with status.phase Pending; claims with phase
Pending; Services get a ClusterIP; Secrets get type Opaque and their stringData folded into data.
Limits: only those fields; the pod template's own defaults (terminationMessagePath, dnsPolicy, ...)
are not filled in, and no other built-in kind is validated beyond its name.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from .validation import cause

Obj = dict[str, Any]


def on_create(kind: str, obj: Obj) -> list[dict[str, str]]:
    """Fill the server's defaults into a new object; the causes it is invalid for."""
    if kind == "Job":
        _default_job(obj)
        return _job_causes(obj, None)
    if kind == "Pod":
        obj.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif kind == "PersistentVolumeClaim":
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending"}
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        _fold_string_data(obj)
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if "clusterIP" not in spec:
            spec["clusterIP"] = str(
                ipaddress.ip_address("10.96.0.10") + sum(map(ord, obj["metadata"]["name"]))
            )
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    return []


def on_update(kind: str, obj: Obj, old: Obj) -> list[dict[str, str]]:
    if kind == "Secret":
        _fold_string_data(obj)
    return _job_causes(obj, old) if kind == "Job" else []


def _fold_string_data(secret: Obj) -> None:
    """stringData is write-only: the server moves it into data, base64-encoded."""
    for key, value in (secret.pop("stringData", None) or {}).items():
        secret.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()


def _default_job(job: Obj) -> None:
    meta, spec = job["metadata"], job.setdefault("spec", {})
    uid, name = meta["uid"], meta["name"]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1 if spec.get("parallelism", 1) is not None else None)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if spec.get("manualSelector"):
        return
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "job-name": name,
        }
    )


def _job_causes(job: Obj, old: Obj | None) -> list[dict[str, str]]:
    spec = job.get("spec") or {}
    causes = []
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        shown = f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"'
        causes.append(
            cause(
                "FieldValueNotSupported" if policy else "FieldValueRequired",
                "spec.template.spec.restartPolicy",
                shown if policy else 'Required value: valid values: "OnFailure", "Never"',
            )
        )
    if old is not None:
        before = old.get("spec") or {}
        for field in ("template", "selector", "completionMode"):
            if spec.get(field) != before.get(field) and not (
                field == "template" and _suspended_change(spec, before)
            ):
                causes.append(
                    cause("FieldValueInvalid", f"spec.{field}", 'Invalid value: "object": field is immutable')
                )
    return causes


def _suspended_change(spec: Obj, before: Obj) -> bool:
    """Kubernetes lets a suspended Job that never started change its pod template's scheduling fields."""
    strip = ("nodeSelector", "tolerations", "affinity", "schedulingGates")
    new_pod = {k: v for k, v in (spec.get("template") or {}).get("spec", {}).items() if k not in strip}
    old_pod = {k: v for k, v in (before.get("template") or {}).get("spec", {}).items() if k not in strip}
    return bool(spec.get("suspend")) and new_pod == old_pod
