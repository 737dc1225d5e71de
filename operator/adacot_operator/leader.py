"""Leader election between operator replicas, on a coordination.k8s.io/v1 Lease (client-go's scheme).

Callers: adacot_operator.handlers (starts `Elector.run` in a thread at startup when
`leader_election_namespace` is set; handlers and the resync act only while `leading` is True). Why not
block startup until elected: a follower keeps watching (its cache is warm for a takeover) and answers
its liveness probe; it just does nothing. Why not kopf's peering: it needs its own cluster-wide CRDs
and pauses whole operators by priority, where one Lease in the release namespace does the job.

The decision (`next_lease`) is a pure function of the Lease, this replica's identity and the time: take
a missing or expired Lease, renew our own, follow while another holder's is fresh. Writes are guarded by
the Lease's resourceVersion, so two replicas racing for an expired Lease cannot both win. A leader that
cannot renew for a whole lease duration steps down (stops acting) before a follower can take over.
Limits: clocks of the replicas are assumed to agree within a fraction of the lease duration (as
client-go assumes); a leader paused longer than its lease may act once more after losing it (children
are created idempotently by name, so the harm is a duplicate status write).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)
LEASE_NAME = "adacot-operator"


class LeaseApi(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create(self, manifest: dict[str, Any]) -> bool: ...
    def replace(self, manifest: dict[str, Any]) -> bool: ...


def identity() -> str:
    """This replica's name in the Lease: the pod's name (POD_NAME from the downward API), else
    host-pid (two processes on one machine, as in the tests)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def next_lease(lease: dict[str, Any] | None, me: str, now: datetime, duration_s: int,
               namespace: str) -> dict[str, Any] | None:  # fmt: skip
    """The Lease to write to lead (create when `lease` is None, else replace), or None: another
    replica holds a fresh one."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if lease is None:
        fresh: dict[str, Any] = {"holderIdentity": me, "leaseDurationSeconds": duration_s,
                                 "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}  # fmt: skip
        meta = {"name": LEASE_NAME, "namespace": namespace}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": fresh}
    spec: dict[str, Any] = dict(lease.get("spec") or {})
    holder = spec.get("holderIdentity")
    if holder and holder != me and not _expired(spec, now):
        return None
    if holder != me:
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=me, acquireTime=stamp, leaseTransitions=transitions)
    spec.update(renewTime=stamp, leaseDurationSeconds=duration_s)
    return {**lease, "spec": spec}


def _expired(spec: dict[str, Any], now: datetime) -> bool:
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    if not renewed:
        return True
    at = datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    return now >= at + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))


class Elector:
    """Keeps trying to lead; `leading` says whether this replica may act now."""

    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        duration_s: int,
        on_gain: Callable[[], None],
        me: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api, self.namespace, self.duration_s = api, namespace, duration_s
        self.on_gain, self.me, self.clock = on_gain, me or identity(), clock
        self.leading = False
        self._renewed: datetime | None = None
        self._stop = threading.Event()

    def step(self) -> bool:
        """One attempt to acquire or renew; returns `leading` after it."""
        now = self.clock()
        try:
            current = self.api.get("Lease", self.namespace, LEASE_NAME)
            wanted = next_lease(current, self.me, now, self.duration_s, self.namespace)
            won = wanted is not None and (
                self.api.create(wanted) if current is None else self.api.replace(wanted)
            )
        except Exception as error:  # the API is away: keep leading only while the lease surely holds
            log.warning("leader election: %s", error)
            won = False
        if won:
            self._renewed = now
        was, self.leading = self.leading, won or self._still_ours(now)
        if self.leading != was:
            log.warning("leader election: %s %s", self.me, "leads" if self.leading else "steps down")
            if self.leading:
                self.on_gain()
        return self.leading

    def _still_ours(self, now: datetime) -> bool:
        """A renewal failed: keep acting until two thirds of the lease, before anyone may take over."""
        return bool(
            self.leading
            and self._renewed
            and now < self._renewed + timedelta(seconds=self.duration_s * 2 / 3)
        )

    def run(self) -> None:
        """Try every third of the lease duration until `stop`."""
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.duration_s / 3)

    def stop(self) -> None:
        self._stop.set()
