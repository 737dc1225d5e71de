"""The headless Service of a multi-node SFTJob: stable DNS names (`<job>-<index>.<job>`) for the pods
of its Indexed Job, so torchrun's rendezvous can find node 0.

Callers: adacot_operator.builders.children (build_children), only when
adacot_operator.builders.job.is_multi_node holds; the pod side (subdomain, MASTER_ADDR) is the Job
builder's. A pure function returning a Kubernetes-shaped dict. Limits: one TCP port (spec.masterPort);
no NetworkPolicy is made for it.
"""

from __future__ import annotations

from typing import Any

from adacot.api import AnyResource
from adacot.api.sft_job import SFTJob
from adacot_operator.names import child_metadata, selector


def headless_service(resource: AnyResource, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """The Service giving an Indexed Job's pods stable DNS names (`<job>-<index>.<job>`) for torchrun's
    rendezvous; published before the pods are ready, since rendezvous comes first."""
    assert isinstance(resource, SFTJob)
    port = resource.spec.master_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(resource, name, annotations),
        "spec": {
            "clusterIP": "None",
            "selector": selector(resource),
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
