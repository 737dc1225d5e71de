"""Storage of a stage's pod: the output PersistentVolumeClaim, and the pod's volumes and mounts (spec
ConfigMap, /dev/shm, /tmp and HOME scratch (the root filesystem is read-only), output claim, the
claims its spec names, its producers' artifacts).

Callers: adacot_operator.builders.children (build_children), which hands the volumes and mounts to the
Job builder's pod template. Pure functions returning Kubernetes-shaped dicts. The layout (mount paths)
is adacot_operator.resolve's. One volume per distinct claim, mounted once per use (output read-write,
the rest read-only), so a claim that is both the output and an input is attached once. Limits: access
modes are taken as given (a sharded Job whose pods land on several nodes needs ReadWriteMany; the
scheduler, not this module, finds out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adacot.api import AnyResource
from adacot_operator.builders.security import scratch_mounts, scratch_volumes
from adacot_operator.names import child_metadata, volume_name
from adacot_operator.resolve import (
    SPEC_DIR,
    SPEC_FILE,
    InputMount,
    claim_mount,
    output_claim_name,
    output_mount,
)
from adacot_operator.settings import OperatorSettings

SPEC_VOLUME = "spec"
SHM_VOLUME = "shm"


def output_claim(
    resource: AnyResource, settings: OperatorSettings, annotations: Mapping[str, str]
) -> dict[str, Any] | None:
    """The PVC to create for the output, or None with output.existingClaim. Size and storage class
    come from the spec when it sets them, else from the settings; the volume is owned by the resource
    (deleted with it) only with retention Delete."""
    output = resource.spec.output
    create = output.create
    if create is None or output.existing_claim:
        return None
    size = create.size or settings.storage_size
    spec: dict[str, Any] = {
        "accessModes": list(create.access_modes),
        "resources": {"requests": {"storage": size}},
    }
    storage_class = create.storage_class_name or settings.storage_class
    if storage_class:
        spec["storageClassName"] = storage_class
    claim = output_claim_name(resource)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(resource, claim, annotations, owned=output.retention == "Delete"),
        "spec": spec,
    }


def _claim_volume(claim: str) -> dict[str, Any]:
    return {"name": volume_name("claim", claim), "persistentVolumeClaim": {"claimName": claim}}


def pod_volumes(
    resource: AnyResource, config_map: str, spec_claims: list[str], inputs: list[InputMount]
) -> list[dict[str, Any]]:
    """Volumes of the stage's pod: the spec ConfigMap, /dev/shm in memory, one per distinct claim."""
    shm = {"medium": "Memory", "sizeLimit": resource.spec.resources.shared_memory}
    volumes: list[dict[str, Any]] = [
        {
            "name": SPEC_VOLUME,
            "configMap": {"name": config_map, "items": [{"key": SPEC_FILE, "path": SPEC_FILE}]},
        },
        {"name": SHM_VOLUME, "emptyDir": shm},
        *scratch_volumes(),
    ]
    claims = [output_claim_name(resource), *spec_claims, *(m.claim for m in inputs)]
    volumes += [_claim_volume(c) for c in dict.fromkeys(claims)]
    return volumes


def pod_mounts(
    resource: AnyResource, root: str, spec_claims: list[str], inputs: list[InputMount]
) -> list[dict[str, Any]]:
    """Mounts of the stage container (see adacot_operator.resolve for the layout)."""
    output = output_claim_name(resource)
    mounts: list[dict[str, Any]] = [
        {"name": SPEC_VOLUME, "mountPath": SPEC_DIR, "readOnly": True},
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        *scratch_mounts(),
        {"name": volume_name("claim", output), "mountPath": output_mount(root)},
    ]
    mounts += [
        {"name": volume_name("claim", c), "mountPath": claim_mount(root, c), "readOnly": True}
        for c in spec_claims
    ]
    mounts += [
        {
            "name": volume_name("claim", m.claim),
            "mountPath": m.mount_path,
            "subPath": m.sub_path,
            "readOnly": True,
        }
        for m in inputs
    ]
    return mounts
