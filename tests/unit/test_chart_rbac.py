"""The chart's RBAC against a table of the API calls the operator (kopf + adacot_operator.kube) and the
stage pods (adacot.progress.publish) make: each allowed call is granted, and what neither needs is refused,
cluster-wide and per namespace. The end-to-end tests replay the emulator's request log through the same
`chart_rbac.denied`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_tools
import pytest
from chart_rbac import attributes, denied
from helm_tools import render

layer_tools = helm_tools.layer_tools
helm_bin = helm_tools.helm_bin

RELEASE_NS = "adacot-system"
KINDS = ("gradingruns", "difficultybanks", "distillationjobs", "sftjobs")
ADACOT = "/apis/adacot.dev/v1alpha1"
GR_A = f"{ADACOT}/namespaces/a/gradingruns"


def operator_calls(ns: str) -> list[tuple[str, str]]:
    """What the operator does inside one namespace: kopf's watches and patches, the reconciler's CRUD."""
    calls = [("GET", f"{ADACOT}/namespaces/{ns}/{k}?watch=true") for k in KINDS]
    calls += [("GET", f"{ADACOT}/namespaces/{ns}/{k}") for k in KINDS]
    calls += [
        ("PATCH", f"{ADACOT}/namespaces/{ns}/gradingruns/pool"),  # kopf: finalizer, state annotations
        ("PATCH", f"{ADACOT}/namespaces/{ns}/gradingruns/pool/status"),
        ("GET", f"{ADACOT}/namespaces/{ns}/sftjobs/tuned"),
        ("POST", f"/apis/batch/v1/namespaces/{ns}/jobs"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/pool-grade"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dadacot"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs?watch=true"),
        ("DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs/pool-grade"),
        ("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=job-name%3Dpool-grade"),
        ("GET", f"/api/v1/namespaces/{ns}/pods?watch=true"),
        ("POST", f"/api/v1/namespaces/{ns}/events"),
        ("GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3DFailedCreate"),  # why no pods
    ]
    for plural, name in (
        ("configmaps", "pool-grade"),
        ("persistentvolumeclaims", "pool-grade"),
        ("services", "t"),
    ):
        calls += [
            ("POST", f"/api/v1/namespaces/{ns}/{plural}"),
            ("GET", f"/api/v1/namespaces/{ns}/{plural}/{name}"),
            ("PATCH", f"/api/v1/namespaces/{ns}/{plural}/{name}"),  # Retain: drop the owner reference
            ("DELETE", f"/api/v1/namespaces/{ns}/{plural}/{name}"),
        ]
    return calls


DISCOVERY = [
    ("GET", "/apis"),
    ("GET", "/api/v1"),
    ("GET", f"{ADACOT}"),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=true"),
]
# kopf watching named namespaces lists and watches Namespace objects (kopf/_core/reactor/observation.py).
NAMESPACE_OBSERVER = [("GET", "/api/v1/namespaces"), ("GET", "/api/v1/namespaces?watch=true")]
CLUSTER_WATCHES = [("GET", f"{ADACOT}/{k}?watch=true") for k in KINDS] + [
    ("GET", "/apis/batch/v1/jobs?watch=true"),
    ("GET", "/api/v1/pods?watch=true"),
]
NEVER_FOR_THE_OPERATOR = [
    ("GET", "/api/v1/namespaces/team-a/secrets/hub"),
    ("GET", "/api/v1/secrets"),
    ("DELETE", f"{ADACOT}/namespaces/team-a/gradingruns/pool"),
    ("POST", f"{ADACOT}/namespaces/team-a/gradingruns"),
    ("POST", "/api/v1/namespaces/team-a/pods"),
    ("PUT", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gradingruns.adacot.dev"),
    ("PATCH", "/api/v1/nodes/node-1"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings"),
]


@pytest.fixture(scope="module")
def charts(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    home = tmp_path_factory.mktemp("helm")
    namespaced = {"watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]}}
    return {
        "cluster": render(helm_bin, {}, home / "cluster", namespace=RELEASE_NS),
        "namespaced": render(helm_bin, namespaced, home / "namespaced", namespace=RELEASE_NS),
    }


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", f"{GR_A}?watch=true", ("watch", "adacot.dev", "gradingruns", "a", None)),
        ("GET", f"{GR_A}?watch=1&resourceVersion=5", ("watch", "adacot.dev", "gradingruns", "a", None)),
        ("GET", f"{ADACOT}/gradingruns", ("list", "adacot.dev", "gradingruns", None, None)),
        ("PATCH", f"{GR_A}/x/status", ("patch", "adacot.dev", "gradingruns/status", "a", "x")),
        ("DELETE", "/api/v1/namespaces/a/pods", ("deletecollection", "", "pods", "a", None)),
        ("GET", "/api/v1/namespaces/a", ("get", "", "namespaces", "a", "a")),
        ("PUT", "/api/v1/nodes/n1", ("update", "", "nodes", None, "n1")),
    ],
)  # fmt: skip
def test_request_attributes(method: str, url: str, expected: tuple[Any, ...]) -> None:
    attrs = attributes(method, url)
    assert attrs is not None
    assert (attrs.verb, attrs.group, attrs.resource, attrs.namespace, attrs.name) == expected


def test_discovery_is_not_a_resource_request() -> None:
    assert attributes("GET", "/apis") is None and attributes("GET", f"{ADACOT}") is None


def test_cluster_wide_operator_may_do_its_work_everywhere(charts: dict[str, list[dict[str, Any]]]) -> None:
    calls = DISCOVERY + CLUSTER_WATCHES + operator_calls("team-a") + operator_calls("anything")
    assert denied(charts["cluster"], "adacot", RELEASE_NS, calls) == []
    # kopf does not observe namespaces when it watches them all: no grant needed, none given.
    assert len(denied(charts["cluster"], "adacot", RELEASE_NS, NAMESPACE_OBSERVER)) == 2


@pytest.mark.parametrize("chart", ["cluster", "namespaced"])
def test_operator_never_gets_more(charts: dict[str, list[dict[str, Any]]], chart: str) -> None:
    refused = denied(charts[chart], "adacot", RELEASE_NS, NEVER_FOR_THE_OPERATOR)
    assert len(refused) == len(NEVER_FOR_THE_OPERATOR), refused


def test_namespaced_operator_is_confined(charts: dict[str, list[dict[str, Any]]]) -> None:
    objs = charts["namespaced"]
    allowed_calls = DISCOVERY + NAMESPACE_OBSERVER + operator_calls("team-a") + operator_calls("team-b")
    assert denied(objs, "adacot", RELEASE_NS, allowed_calls) == []
    outside = operator_calls("team-c") + CLUSTER_WATCHES
    assert len(denied(objs, "adacot", RELEASE_NS, outside)) == len(outside)


@pytest.mark.parametrize(("chart", "ns"), [("cluster", RELEASE_NS), ("namespaced", "team-b")])
def test_worker_may_do_nothing_at_all(charts: dict[str, list[dict[str, Any]]], chart: str, ns: str) -> None:
    """Stage pods hold no Kubernetes power: not even the progress reports of old (issue 15)."""
    objs = charts[chart]
    forbidden = [
        *(("PATCH", f"{ADACOT}/namespaces/{ns}/{k}/run/status") for k in KINDS),
        ("PATCH", f"{ADACOT}/namespaces/{ns}/gradingruns/run"),
        ("GET", f"{ADACOT}/namespaces/{ns}/gradingruns/run"),
        ("PUT", f"{ADACOT}/namespaces/{ns}/gradingruns/run/status"),
        ("GET", f"/api/v1/namespaces/{ns}/secrets/hub"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        ("POST", f"/apis/batch/v1/namespaces/{ns}/jobs"),
        ("PATCH", f"{ADACOT}/namespaces/elsewhere/gradingruns/run/status"),
    ]
    assert len(denied(objs, "adacot-worker", ns, forbidden)) == len(forbidden)
