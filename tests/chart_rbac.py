"""Kubernetes RBAC evaluated over the chart's rendered objects: may this ServiceAccount make this request?

Callers: tests/unit/test_chart_rbac.py (a table of the operator's and the stage pods' API calls) and the
chart's end-to-end test (tests/integration/test_chart_e2e.py), which feeds the API emulator's request log
of the real operator through `denied_log`: every call it made must be granted. The request-to-attributes
mapping follows the API server's RequestInfoFactory (verb from method, `?watch`, name presence;
subresources as `resource/sub`); authorization follows the RBAC authorizer (rules are additive; Roles
count only in their namespace; a ClusterRole bound by a RoleBinding only in the binding's namespace).
Limits: no aggregation of ClusterRoles (the chart's aggregated roles are for people, not checked here),
no resourceNames-by-collection subtleties, discovery/non-resource URLs (/api, /apis/<group>/<version>,
/version) always allowed, as the built-in system:discovery role does for every authenticated user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Attributes:
    """What RBAC decides on: verb, API group, resource (with /subresource), namespace, name."""

    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


def attributes(method: str, url: str) -> Attributes | None:
    """The RBAC attributes of a request; None for discovery and other non-resource URLs."""
    split = urlsplit(url)
    parts = [p for p in split.path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:  # the Namespace object itself
        namespace = rest[1]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    return Attributes(_verb(method, name, parse_qs(split.query)), group, resource, namespace, name)


def _verb(method: str, name: str | None, query: dict[str, list[str]]) -> str:
    if method == "GET":
        if query.get("watch", ["false"])[0] in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return VERBS[method]


def _rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has("verbs", attrs.verb)
        and has("apiGroups", attrs.group)
        and has("resources", attrs.resource)
        and (not names or attrs.name in names)
    )


def _subject_matches(binding: dict[str, Any], account: str, account_namespace: str) -> bool:
    return any(
        s.get("kind") == "ServiceAccount"
        and s.get("name") == account
        and s.get("namespace") == account_namespace
        for s in binding.get("subjects") or []
    )


def rules_for(
    objs: list[dict[str, Any]], account: str, account_namespace: str
) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace the rule holds in, or None for cluster-wide; rule) for every rule bound to the account."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
    found: list[tuple[str | None, dict[str, Any]]] = []
    for binding in objs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not _subject_matches(binding, account, account_namespace):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_ns, ref["name"]))
        assert role is not None, (
            f"{binding['kind']} {binding['metadata']['name']}: no {ref['kind']} {ref['name']}"
        )
        found.extend((scope, rule) for rule in role.get("rules") or [])
    return found


def allowed(rules: list[tuple[str | None, dict[str, Any]]], attrs: Attributes) -> bool:
    """The RBAC authorizer's answer for one request."""
    for scope, rule in rules:
        if scope is not None and attrs.namespace != scope:
            continue
        if _rule_allows(rule, attrs):
            return True
    return False


def denied(
    objs: list[dict[str, Any]], account: str, account_namespace: str, requests: list[tuple[str, str]]
) -> list[str]:
    """`METHOD URL (verb group/resource)` of each (method, url) request the account may not make."""
    rules = rules_for(objs, account, account_namespace)
    refused = []
    for method, url in requests:
        attrs = attributes(method, url)
        if attrs is not None and not allowed(rules, attrs):
            refused.append(f"{method} {url} ({attrs.verb} {attrs.group or 'core'}/{attrs.resource})")
    return refused


def denied_log(
    objs: list[dict[str, Any]], account: str, account_namespace: str, entries: list[dict[str, Any]]
) -> list[str]:
    """Like `denied`, for the API emulator's request log (entries carry verb/group/resource/...;
    discovery requests have no verb and are skipped)."""
    rules = rules_for(objs, account, account_namespace)
    refused = []
    for e in entries:
        if not e.get("verb"):
            continue
        resource = f"{e['resource']}/{e['subresource']}" if e.get("subresource") else e["resource"]
        attrs = Attributes(e["verb"], e.get("group") or "", resource, e.get("namespace"), e.get("name"))
        if not allowed(rules, attrs):
            refused.append(
                f"{e['method']} {e['path']} ({attrs.verb} {attrs.group or 'core'}/{attrs.resource})"
            )
    return sorted(set(refused))
