"""The emulator's pieces in-process: patch semantics, selectors, printer columns, store history and
garbage collection rules (fast tables of cases; the HTTP behaviour is in test_emulator.py)."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from .errors import ApiError
from .patches import apply_patch
from .selectors import field_matcher, label_matcher
from .store import Store
from .tables import human_duration, jsonpath


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "finalizers": ["a"]}, "spec": {"containers": list(containers)}}


def test_strategic_merge_patch_merges_named_lists_and_honours_directives() -> None:
    current = pod(
        {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]}, {"name": "b", "image": "y"}
    )
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "B", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
            ]
        },
    }
    merged = apply_patch(current, patch, "application/strategic-merge-patch+json")
    assert merged["metadata"]["finalizers"] == ["a", "b"]
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    ]
    replaced = apply_patch(
        current, {"spec": {"$patch": "replace", "containers": []}}, "application/strategic-merge-patch+json"
    )
    assert replaced["spec"] == {"containers": []}


def test_merge_patch_replaces_lists_and_null_deletes() -> None:
    current = pod({"name": "a"}, {"name": "b"})
    merged = apply_patch(
        current,
        {"spec": {"containers": [{"name": "c"}]}, "metadata": {"finalizers": None}},
        "application/merge-patch+json",
    )
    assert merged == {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}


def test_json_patch_operations_and_failed_test() -> None:
    current = {"metadata": {"name": "p", "labels": {"a/b": "1"}}, "items": [1, 2]}
    ops = [
        {"op": "add", "path": "/items/-", "value": 3},
        {"op": "remove", "path": "/metadata/labels/a~1b"},
        {"op": "replace", "path": "/items/0", "value": 0},
        {"op": "copy", "from": "/items", "path": "/copy"},
    ]
    assert apply_patch(current, ops, "application/json-patch+json") == {
        "metadata": {"name": "p", "labels": {}},
        "items": [0, 2, 3],
        "copy": [0, 2, 3],
    }
    with pytest.raises(ApiError) as failed:
        apply_patch(current, [{"op": "test", "path": "/items/0", "value": 9}], "application/json-patch+json")
    assert failed.value.code == 422


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=front", ["b"]),
        ("tier in (front, back)", ["a", "b"]),
        ("tier notin (front)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("", ["a", "b", "c"]),
    ],
)
def test_label_selectors(selector: str, expected: list[str]) -> None:
    objs = [
        {"metadata": {"name": n, "labels": labels}}
        for n, labels in (
            ("a", {"app": "web", "tier": "front"}),
            ("b", {"app": "web", "tier": "back"}),
            ("c", {"app": "db"}),
        )
    ]
    match = label_matcher(selector)
    assert [o["metadata"]["name"] for o in objs if match(o)] == expected


def test_field_selector_and_malformed_selectors() -> None:
    obj = {"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert field_matcher("metadata.name=a,status.phase!=Failed")(obj)
    assert not field_matcher("metadata.namespace==other")(obj)
    with pytest.raises(ApiError) as bad:
        label_matcher("a=b=c")
    assert bad.value.code == 400


def test_printer_column_jsonpath_and_age() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Complete", "status": "True"}]
        }
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Complete")].status') == ["True"]
    assert jsonpath(obj, ".status.conditions[-1:].type") == ["Complete"]
    assert jsonpath(obj, ".status.missing") == []
    assert human_duration("2000-01-01T00:00:00Z").endswith("y")


def test_watch_from_a_version_older_than_the_history_is_gone() -> None:
    store = Store()
    store.history = deque(store.history, maxlen=3)
    namespaces = store.resolve("", "v1", "namespaces")
    for name in ("a", "b", "c", "d"):
        store.create(namespaces, "", {"metadata": {"name": name}})
    assert [e.obj["metadata"]["name"] for e in store.events_since(store.rv - 2)] == ["c", "d"]
    with pytest.raises(ApiError) as gone:
        store.events_since(1)
    assert gone.value.code == 410 and gone.value.reason == "Expired"


def test_garbage_collection_by_owner_and_propagation_policies() -> None:
    store = Store()
    cms = store.resolve("", "v1", "configmaps")
    owner, _ = store.create(cms, "default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for name in ("child", "kept"):
        store.create(cms, "default", {"metadata": {"name": name, "ownerReferences": [ref]}})
    store.patch(cms, "default", "kept", {"metadata": {"finalizers": ["x/y"]}}, "application/merge-patch+json")

    store.delete(cms, "default", "owner", {"propagationPolicy": "Foreground"})
    held = store.get(cms, "default", "owner")  # waits for its dependents: "kept" has a finalizer
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"] and held["metadata"]["deletionTimestamp"]
    assert [o["metadata"]["name"] for o in store.list_objects(cms, "default")] == ["kept", "owner"]
    store.patch(cms, "default", "kept", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert store.list_objects(cms, "default") == []

    owner, _ = store.create(cms, "default", {"metadata": {"name": "owner"}})
    ref["uid"] = owner["metadata"]["uid"]
    store.create(cms, "default", {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    store.delete(cms, "default", "owner", {"propagationPolicy": "Orphan"})
    assert "ownerReferences" not in store.get(cms, "default", "orphan")["metadata"]


def test_namespace_deletion_removes_its_content_and_default_is_protected() -> None:
    store = Store()
    namespaces, cms = store.resolve("", "v1", "namespaces"), store.resolve("", "v1", "configmaps")
    store.create(namespaces, "", {"metadata": {"name": "tmp"}})
    store.create(cms, "tmp", {"metadata": {"name": "c"}})
    store.delete(namespaces, "", "tmp")
    assert store.list_objects(cms, "tmp") == []
    assert "tmp" not in [n["metadata"]["name"] for n in store.list_objects(namespaces, None)]
    with pytest.raises(ApiError) as forbidden:
        store.delete(namespaces, "", "default")
    assert forbidden.value.code == 403
    with pytest.raises(ApiError) as terminating_missing:
        store.create(cms, "tmp", {"metadata": {"name": "late"}})
    assert terminating_missing.value.message == 'namespaces "tmp" not found'


def test_jobs_get_the_servers_selector_labels_defaults_and_immutable_template() -> None:
    store = Store()
    jobs = store.resolve("batch", "v1", "jobs")
    spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "x"}]}}}
    job, _ = store.create(jobs, "default", {"metadata": {"name": "j"}, "spec": spec})
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"
    assert (job["spec"]["backoffLimit"], job["spec"]["completions"], job["spec"]["parallelism"]) == (6, 1, 1)
    change = {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "y"}]}}}}
    with pytest.raises(ApiError) as immutable:
        store.patch(jobs, "default", "j", change, "application/strategic-merge-patch+json")
    assert (
        immutable.value.message
        == 'Job.batch "j" is invalid: spec.template: Invalid value: "object": field is immutable'
    )
    done = {"status": {"succeeded": 1}}
    assert (
        store.patch(jobs, "default", "j", done, "application/merge-patch+json", "status")[0]["status"]
        == done["status"]
    )
    spec["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiError) as restart:
        store.create(jobs, "default", {"metadata": {"name": "k"}, "spec": spec})
    assert (
        restart.value.details
        and restart.value.details["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    )


def test_secret_string_data_is_folded_into_data() -> None:
    store = Store()
    secrets = store.resolve("", "v1", "secrets")
    secret, _ = store.create(secrets, "default", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}})
    assert secret["data"] == {"token": "YWJj"} and secret["type"] == "Opaque" and "stringData" not in secret
