"""The Lease decision as data: take a missing or expired Lease, renew our own, follow a fresh one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from adacot_operator.leader import LEASE_NAME, next_lease

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def held(by: str, seconds_ago: float, transitions: int = 0) -> dict[str, Any]:
    renewed = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": by, "leaseDurationSeconds": 15, "renewTime": renewed, "acquireTime": renewed,
            "leaseTransitions": transitions}  # fmt: skip
    return {"kind": "Lease", "metadata": {"name": LEASE_NAME, "resourceVersion": "7"}, "spec": spec}


def test_a_missing_lease_is_created_for_us() -> None:
    lease = next_lease(None, "a", NOW, 15, "adacot-system")
    assert lease is not None and lease["metadata"] == {"name": LEASE_NAME, "namespace": "adacot-system"}
    assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseTransitions"] == 0


def test_a_fresh_lease_of_another_replica_is_followed() -> None:
    assert next_lease(held("b", seconds_ago=5), "a", NOW, 15, "ns") is None


def test_an_expired_lease_is_taken_over_guarded_by_its_resource_version() -> None:
    lease = next_lease(held("b", seconds_ago=16, transitions=2), "a", NOW, 15, "ns")
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseTransitions"] == 3 and lease["metadata"]["resourceVersion"] == "7"


def test_our_own_lease_is_renewed_without_a_transition() -> None:
    lease = next_lease(held("a", seconds_ago=5, transitions=1), "a", NOW, 15, "ns")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1
    assert lease["spec"]["renewTime"].startswith("2026-12-03T12:00:00")
