"""No finalizer where owner references suffice: no kopf handler of the operator makes kopf put one on a
resource (a kopf timer or a non-optional delete handler would), so deleting a resource or its namespace
never waits for the operator; the safety-net resync that replaced the timers covers every resource.
(The children's ownerReferences: tests/unit/operator/builders/test_children.py.)"""

from __future__ import annotations

import kopf
import pytest
from adacot_operator import handlers
from adacot_operator.cache import NamespaceCache

from adacot.api import RESOURCE_KINDS


def test_no_registered_handler_requires_a_finalizer() -> None:
    registry = kopf.get_default_registry()  # importing handlers registered everything
    for sub in (registry._changing, registry._spawning, registry._watching):  # kopf's three registries
        wanting = [h.id for h in sub.get_all_handlers() if getattr(h, "requires_finalizer", None)]
        assert wanting == [], f"these handlers make kopf add a finalizer: {wanting}"
    ids = {h.id for h in registry._watching.get_all_handlers()}
    assert {f"{kind.lower()}_event" for kind in RESOURCE_KINDS} <= ids


def test_resync_reconciles_every_resource_the_watch_has_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, str]] = []
    cache: NamespaceCache[object] = NamespaceCache(lambda kind, body: None)  # invalid ones too
    cache.observe("GradingRun", "ml", {"metadata": {"name": "pool", "resourceVersion": "3"}})
    cache.observe("SFTJob", "team", {"metadata": {"name": "sft", "resourceVersion": "4"}})
    monkeypatch.setattr(handlers, "CACHE", cache)
    monkeypatch.setattr(handlers, "reconcile", lambda kind, ns, name: seen.append((kind, ns, name)))
    handlers.resync()
    assert sorted(seen) == [("GradingRun", "ml", "pool"), ("SFTJob", "team", "sft")]
