"""NamespaceCache: the namespace listed once, then kept from watch events in resourceVersion order."""

from __future__ import annotations

from typing import Any

from adacot_operator.cache import NamespaceCache


def body(name: str, rv: int | str, phase: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


def seeded(cache: NamespaceCache, *bodies: dict[str, Any]) -> dict[Any, Any]:
    listed = {("GradingRun", b["metadata"]["name"]): {**b, "kind": "GradingRun"} for b in bodies}
    return cache.bodies("ns", lambda: listed)


def phases(found: dict[Any, Any]) -> dict[str, str]:
    return {name: b["status"]["phase"] for (_, name), b in found.items()}


def test_a_namespace_is_listed_once_then_kept_from_events() -> None:
    cache, calls = NamespaceCache(), []

    def seed() -> dict[Any, Any]:
        calls.append(1)
        return {("GradingRun", "a"): {**body("a", 5, "Pending"), "kind": "GradingRun"}}

    assert phases(cache.bodies("ns", seed)) == {"a": "Pending"}
    cache.observe("GradingRun", "ns", body("a", 6, "Running"))
    cache.observe("DifficultyBank", "ns", body("b", 7, "Pending"))
    found = cache.bodies("ns", seed)
    assert calls == [1]
    assert phases(found) == {"a": "Running", "b": "Pending"}
    assert found[("DifficultyBank", "b")]["kind"] == "DifficultyBank"
    assert cache.bodies("other", dict) == {}  # namespaces are separate


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = NamespaceCache()
    cache.observe("GradingRun", "ns", body("a", 9, "Running"))
    assert phases(seeded(cache, body("a", 4, "Pending"))) == {"a": "Running"}  # seed list older
    cache.observe("GradingRun", "ns", body("a", 8, "Pending"))  # a late, older event
    assert phases(cache.bodies("ns", dict)) == {"a": "Running"}


def test_a_deletion_is_not_undone_by_an_older_list_but_a_re_creation_comes_back() -> None:
    cache = NamespaceCache()
    cache.observe("GradingRun", "ns", body("a", 5), deleted=True)
    assert seeded(cache, body("a", 4)) == {}
    cache.observe("GradingRun", "ns", body("a", 10, "Pending"))
    assert phases(cache.bodies("ns", dict)) == {"a": "Pending"}
    cache.observe("GradingRun", "ns", body("a", 11), deleted=True)
    assert cache.bodies("ns", dict) == {}


def test_non_numeric_versions_fall_back_to_arrival_order() -> None:
    cache = NamespaceCache()
    seeded(cache)
    cache.observe("GradingRun", "ns", body("a", "x1", "Pending"))
    cache.observe("GradingRun", "ns", body("a", "x0", "Running"))
    assert phases(cache.bodies("ns", dict)) == {"a": "Running"}
    cache.observe("GradingRun", "ns", body("a", "x2"), deleted=True)
    cache.observe("GradingRun", "ns", body("a", "x3", "Pending"))  # no tombstone without a number
    assert phases(cache.bodies("ns", dict)) == {"a": "Pending"}


def test_the_cache_holds_copies() -> None:
    cache, event = NamespaceCache(), body("a", 1, "Pending")
    cache.observe("GradingRun", "ns", event)
    event["status"]["phase"] = "changed by kopf later"
    assert phases(seeded(cache)) == {"a": "Pending"}
