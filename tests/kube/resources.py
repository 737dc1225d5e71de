"""The kinds the emulator serves: built-in types (a fixed table) and custom resources (from CRDs).

Called by store.py (routing a URL to a type, registering a CRD) and discovery.py (APIResourceList,
OpenAPI). A ResourceType holds what discovery and the semantics need: names, scope, subresources,
whether `metadata.generation` is kept, and for custom resources the CRD version (schema, printer
columns). Limits: one stored version per resource (several served CRD versions are converted by
rewriting apiVersion, i.e. conversion strategy None); built-in kinds are stored without schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    """Has the /status subresource (status ignored on the main endpoint)."""
    generation: bool = False
    """Keeps metadata.generation (bumped on spec changes)."""
    crd: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """For custom resources: the CRD version entry (schema, additionalPrinterColumns)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are shared by every served version of (group, plural)."""
        return (self.group, self.plural)

    @property
    def schema(self) -> dict[str, Any] | None:
        return ((self.crd or {}).get("schema") or {}).get("openAPIV3Schema")


def _t(group: str, version: str, plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType(group, version, plural, kind, **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _t("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), status=True),
    _t("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _t("", "v1", "secrets", "Secret"),
    _t("", "v1", "services", "Service", short_names=("svc",), status=True, categories=("all",)),
    _t("", "v1", "pods", "Pod", short_names=("po",), status=True, categories=("all",)),
    _t("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status=True),
    _t("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, short_names=("pv",), status=True),
    _t("", "v1", "events", "Event", short_names=("ev",)),
    _t("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _t("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), status=True),
    _t("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), status=True),
    _t("batch", "v1", "jobs", "Job", status=True, generation=True, categories=("all",)),
    _t(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        status=True,
        generation=True,
        categories=("all",),
    ),
    _t(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status=True,
        generation=True,
    ),
    _t("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _t("coordination.k8s.io", "v1", "leases", "Lease"),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    _t("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False, short_names=("pc",)),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec, names = crd["spec"], crd["spec"]["names"]
    return [
        ResourceType(
            group=spec["group"],
            version=v["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status="status" in (v.get("subresources") or {}),
            generation=True,
            crd=v,
        )
        for v in spec["versions"]
        if v.get("served", True)
    ]


def crd_names_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status a real server gives an accepted CRD (kubectl wait --for=condition=Established)."""
    now = crd["metadata"]["creationTimestamp"]
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    stored = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
    return {"acceptedNames": crd["spec"]["names"], "conditions": conditions, "storedVersions": stored}
