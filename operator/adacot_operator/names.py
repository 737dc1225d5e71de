"""Names, labels, hashes and references the operator puts on a resource's children.

Callers: adacot_operator.builders (building the children) and the handlers/status code (finding them
again: `child_name` and `selector` are how a child is looked up, so they must never change for a given
resource). Pure functions, no API access. Limits: names are DNS-1123 labels of at most
`MAX_CHILD_NAME` characters; longer ones are cut and get a hash suffix, so two different long names
still map to different children.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from adacot.api import AnyResource
from adacot.api.stage_pod import stage_name

STAGE_SHORT: dict[str, str] = {
    "GradingRun": "grade",
    "DifficultyBank": "bank",
    "DistillationJob": "distil",
    "SFTJob": "sft",
}
"""The suffix of each kind's children: `<resource-name>-<short>`."""

# An Indexed Job's pods get the hostname `<job-name>-<index>`, which must fit a 63-character DNS label;
# 5 characters stay free for "-<index>" (shards and nodes are at most 1024).
MAX_CHILD_NAME = 58
HASH_CHARS = 8

LABEL_PREFIX = "adacot.dev"
KIND_LABEL = f"{LABEL_PREFIX}/kind"
NAME_LABEL = f"{LABEL_PREFIX}/name"
STAGE_LABEL = f"{LABEL_PREFIX}/stage"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "adacot"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
"""Label and annotation of an Indexed Job's pod holding its index (the node rank of multi-node SFT)."""
SPEC_HASH = "spec-hash"
"""Annotation name under the operator's prefix (ADACOT_PREFIX): `<prefix>/spec-hash`."""


def _short_hash(text: str, chars: int = HASH_CHARS) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def fit_name(name: str, limit: int = MAX_CHILD_NAME) -> str:
    """`name` if it fits `limit`, else its head plus "-" and a hash of the whole name (deterministic,
    still a DNS-1123 label)."""
    if len(name) <= limit:
        return name
    head = name[: limit - HASH_CHARS - 1].rstrip("-")
    return f"{head}-{_short_hash(name)}"


def child_name(kind: str, name: str) -> str:
    """The name of every child (ConfigMap, PVC, Service, Job) of resource `kind`/`name`."""
    return fit_name(f"{name}-{STAGE_SHORT[kind]}")


def volume_name(prefix: str, claim: str) -> str:
    """A pod volume name for a claim (volume names are DNS-1123 labels of at most 63 characters)."""
    return fit_name(f"{prefix}-{claim}", 63)


def labels(resource: AnyResource) -> dict[str, str]:
    """Labels on every child and pod template of `resource`."""
    kind, name = resource.kind, resource.metadata.name
    return {
        KIND_LABEL: kind.lower(),
        NAME_LABEL: name,
        STAGE_LABEL: stage_name(kind),
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def selector(resource: AnyResource) -> dict[str, str]:
    """The label selector that finds `resource`'s children (and the pods of its Job)."""
    return {k: v for k, v in labels(resource).items() if k in (KIND_LABEL, NAME_LABEL)}


def label_selector(resource: AnyResource) -> str:
    """`selector` in the `k=v,k=v` form list calls take."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector(resource).items()))


def spec_hash(document: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of `document` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return _short_hash(text, 16)


def spec_hash_annotation(prefix: str) -> str:
    """`<prefix>/spec-hash`; the prefix is ADACOT_PREFIX (default adacot.dev)."""
    return f"{prefix}/{SPEC_HASH}"


def owner_reference(resource: AnyResource) -> dict[str, Any]:
    """A controller owner reference to `resource`; it needs the uid the API server gave it."""
    uid = resource.metadata.uid
    if not uid:
        raise ValueError(
            f"{resource.kind}/{resource.metadata.name}: metadata.uid is unset (owner references need "
            "the object as read from the API server)"
        )
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": resource.metadata.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    resource: AnyResource, name: str, annotations: Mapping[str, str], *, owned: bool = True
) -> dict[str, Any]:
    """metadata of a child: its name, the resource's namespace and labels, `annotations`, and a
    controller owner reference unless `owned` is False (a retained volume outlives its resource)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": resource.metadata.namespace,
        "labels": labels(resource),
        "annotations": dict(annotations),
    }
    if owned:
        meta["ownerReferences"] = [owner_reference(resource)]
    return meta
