"""The ConfigMap of a stage: the resolved resource as YAML (`spec.yaml`), which the pod mounts at
/etc/adacot/spec.yaml and `adacot stage <kind> --spec` loads.

Callers: adacot_operator.builders.children (build_children), which resolves the document
(adacot_operator.resolve.resolved_document) and hashes it. A pure function returning a Kubernetes-shaped
dict. Limits: the document is taken as given; a spec larger than a ConfigMap allows (1 MiB) is refused
by the API server, not here.
"""

from __future__ import annotations

from typing import Any

import yaml

from adacot.api import AnyResource
from adacot_operator.names import child_metadata
from adacot_operator.resolve import SPEC_FILE


def config_map(
    resource: AnyResource, name: str, document: dict[str, Any], annotations: dict[str, str]
) -> dict[str, Any]:
    """The ConfigMap holding the resolved resource as YAML (what `adacot stage` reads)."""
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(resource, name, annotations),
        "data": {SPEC_FILE: text},
    }
