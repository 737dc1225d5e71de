"""NamespaceCache: the namespace listed once, then kept from watch events in resourceVersion order, each
body parsed once when it arrives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adacot_operator.cache import NamespaceCache

PARSED: list[tuple[str, str]] = []


def parse_phase(kind: str, body: Mapping[str, Any]) -> str | None:
    """A stand-in model: the phase, None ("does not validate") for phase Invalid; counts its calls."""
    PARSED.append((kind, body["metadata"]["name"]))
    phase = str(body["status"]["phase"])
    return None if phase == "Invalid" else phase


def body(name: str, rv: int | str, phase: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


def new_cache() -> NamespaceCache[str]:
    return NamespaceCache(parse_phase)


def seeded(cache: NamespaceCache[str], *bodies: dict[str, Any]) -> dict[str, str]:
    return phases(cache.models("ns", lambda: {("GradingRun", b["metadata"]["name"]): b for b in bodies}))


def phases(found: dict[Any, str]) -> dict[str, str]:
    return {name: phase for (_, name), phase in found.items()}


def test_a_namespace_is_listed_once_then_kept_from_events() -> None:
    cache, calls = new_cache(), []

    def seed() -> dict[Any, Any]:
        calls.append(1)
        return {("GradingRun", "a"): body("a", 5, "Pending")}

    assert phases(cache.models("ns", seed)) == {"a": "Pending"}
    cache.observe("GradingRun", "ns", body("a", 6, "Running"))
    cache.observe("DifficultyBank", "ns", body("b", 7, "Pending"))
    found = cache.models("ns", seed)
    assert calls == [1]
    assert found == {("GradingRun", "a"): "Running", ("DifficultyBank", "b"): "Pending"}
    assert cache.models("other", dict) == {}  # namespaces are separate


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = new_cache()
    cache.observe("GradingRun", "ns", body("a", 9, "Running"))
    assert seeded(cache, body("a", 4, "Pending")) == {"a": "Running"}  # seed list older
    cache.observe("GradingRun", "ns", body("a", 8, "Pending"))  # a late, older event
    assert phases(cache.models("ns", dict)) == {"a": "Running"}


def test_a_deletion_is_not_undone_by_an_older_list_but_a_re_creation_comes_back() -> None:
    cache = new_cache()
    cache.observe("GradingRun", "ns", body("a", 5), deleted=True)
    assert seeded(cache, body("a", 4)) == {}
    cache.observe("GradingRun", "ns", body("a", 10, "Pending"))
    assert phases(cache.models("ns", dict)) == {"a": "Pending"}
    cache.observe("GradingRun", "ns", body("a", 11), deleted=True)
    assert cache.models("ns", dict) == {}


def test_non_numeric_versions_fall_back_to_arrival_order() -> None:
    cache = new_cache()
    seeded(cache)
    cache.observe("GradingRun", "ns", body("a", "x1", "Pending"))
    cache.observe("GradingRun", "ns", body("a", "x0", "Running"))
    assert phases(cache.models("ns", dict)) == {"a": "Running"}
    cache.observe("GradingRun", "ns", body("a", "x2"), deleted=True)
    cache.observe("GradingRun", "ns", body("a", "x3", "Pending"))  # no tombstone without a number
    assert phases(cache.models("ns", dict)) == {"a": "Pending"}


def test_each_version_is_parsed_once_and_an_invalid_one_is_left_out() -> None:
    cache = new_cache()
    PARSED.clear()
    cache.observe("GradingRun", "ns", body("a", 3, "Pending"))
    cache.observe("GradingRun", "ns", body("a", 3, "Pending"))  # the same version again (a re-list)
    cache.observe("GradingRun", "ns", body("b", 4, "Invalid"))
    assert seeded(cache, body("a", 3, "Pending")) == {"a": "Pending"}
    cache.models("ns", dict)
    assert PARSED.count(("GradingRun", "a")) == 1 and PARSED.count(("GradingRun", "b")) == 1
