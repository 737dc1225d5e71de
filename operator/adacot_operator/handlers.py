"""kopf handlers: when to reconcile, and carrying a reconcile `Plan` out through `Kube`.

Loaded by `kopf run -m adacot_operator.handlers` (the image, the chart, `python -m adacot_operator`):
importing this module registers everything here. The only module of the operator that imports kopf;
the rest is pure (builders, resolve, status, reconcile, cache) or an edge of its own (kube, metrics).
The operator is level-triggered: every cause leads to the same `reconcile(kind, namespace, name)`,
which re-reads the world (the resource, its producers, its Job and pods, fresh from the API, and the
running stage's progress from the pod's endpoint, adacot_operator.progress; the
namespace's other adacot resources, parsed, for the dependency graph, from `cache.NamespaceCache`) and applies
`reconcile.plan`. Causes, per kind (handler ids `<kind>_<cause>`):

- `<kind>_event`: any change of the resource (kopf's watch; also the initial listing, so a restarted
  operator re-derives everything from the cluster — children are found by name, never duplicated),
  except the MODIFIED event that echoes the operator's own status patch (its resourceVersion is the one
  the patch returned, `Kube.own_status_write`): that reconcile would read back what it just wrote, and
  halving the reconciles is what keeps a burst of creations fast (benchmarks/operator.py);
- `jobs_event` / `pods_event`: a change of a child Job or pod labelled `app.kubernetes.io/managed-by:
  adacot` reconciles its owner (found from the `adacot.dev/kind` and `adacot.dev/name` labels);
- when a resource's phase changes, the resources that consume it are reconciled (chaining);
- a resync thread: every `TIMER_INTERVAL_S`, each resource the watch has shown is reconciled, a
  safety net for a missed event or a failed API call (and the pace of progress reads). Not a kopf
  timer: kopf puts a finalizer on every object a timer (or a non-optional delete handler) watches.

No finalizer: deleting a resource (or its namespace) never waits for the operator, even one that is
stopped. Its children carry controller ownerReferences, so garbage collection removes the Job, pods,
ConfigMap and Service, and the output volume with `retention: Delete`; a Retain volume is created
without an owner reference and outlives the resource. Retention is therefore fixed when the volume is
created. A finalizer `<ADACOT_PREFIX>/finalizer` left by an older operator is removed by kopf on the
object's next event (the name stays configured for that).

kopf's own state goes into annotations under ADACOT_PREFIX; kopf's peering is off (`--standalone`, and
set here). Replicas elect a leader on a Lease instead (adacot_operator.leader, when
ADACOT_LEADER_ELECTION_NAMESPACE is set, as the chart does for its 2 replicas): every replica watches,
only the leader reconciles, and a new leader starts with a resync of everything it has seen.
Limits: reconciles of one resource are serialised within the leading process only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, cast

import kopf
from pydantic import ValidationError

from adacot.api import GROUP, RESOURCE_KINDS, VERSION, AnyResource, dependency_graph
from adacot.api.defaults import with_default_model
from adacot_operator.builders.children import build_children
from adacot_operator.cache import NamespaceCache
from adacot_operator.kube import Kube
from adacot_operator.leader import Elector
from adacot_operator.metrics import Metrics, serve
from adacot_operator.names import KIND_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL, child_name
from adacot_operator.progress import read_progress
from adacot_operator.reconcile import Plan, plan
from adacot_operator.resolve import ResolvedInputs
from adacot_operator.settings import OperatorSettings
from adacot_operator.status import Children, Key

log = logging.getLogger(__name__)

TIMER_INTERVAL_S = 30.0
#: Lower-cased kind (the value of the adacot.dev/kind label) -> kind.
KIND_OF_LABEL = {kind.lower(): kind for kind in RESOURCE_KINDS}
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}
METRICS = Metrics()


class _State:
    """What `configure` sets up once: the API access and the settings."""

    kube: Kube | None = None
    settings: OperatorSettings = OperatorSettings()
    elector: Elector | None = None
    """Set when replicas elect a leader (settings.leader_election_namespace); None: this one acts."""
    locks: ClassVar[dict[tuple[str, str, str], threading.Lock]] = {}
    guard: ClassVar[threading.Lock] = threading.Lock()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Read ADACOT_* settings (a bad value stops the operator here, naming the variable), set kopf's
    persistence prefix and watch timeouts, connect, start the metrics endpoint and the resync."""
    ours = OperatorSettings.from_env()
    settings.persistence.finalizer = f"{ours.prefix}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ours.prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ours.prefix)
    settings.watching.server_timeout = ours.watch_timeout_s
    settings.watching.client_timeout = ours.watch_timeout_s + 30
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    _State.settings, _State.kube = ours, Kube.connect()
    serve(METRICS, ours.metrics_port)
    if ours.leader_election_namespace:
        elector = Elector(_State.kube, ours.leader_election_namespace, ours.leader_lease_seconds, _take_over)
        _State.elector = elector
        elector.step()  # lead at once when nobody does, before the first events arrive
        threading.Thread(target=elector.run, name="adacot-leader-election", daemon=True).start()
    threading.Thread(target=_resync_forever, name="adacot-resync", daemon=True).start()


def reconcile(kind: str, namespace: str, name: str, echo: str | None = None) -> Plan | None:
    """Re-read the world and carry out one plan; None when the resource is gone or being deleted, or
    when `echo` (the resourceVersion of the MODIFIED event that asks) is this operator's own status
    write: only that status changed since a reconcile read the world, and a child's change arrives as
    an event of its own."""
    with _lock(kind, namespace, name):
        kube = _kube()
        if echo is not None and kube.own_status_write(kind, namespace, name, echo):
            return None  # asked under the lock: a reconcile still writing has finished
        with METRICS.reconciling(kind):
            body = kube.get(kind, namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            models = CACHE.models(namespace, lambda: _namespace(kube, namespace))
            model = _parse(kind, body)  # the fresh body, which may be newer than the cache's
            models.pop((kind, name), None)
            if model is not None:
                models[(kind, name)] = model
            inputs = dependency_graph(models.values()).get((kind, name), []) if model else []
            producers = {key: kube.get(key[0], namespace, key[1]) for key in inputs}  # fresh: phases
            children = kube.children(model) if model is not None else Children()
            children = replace(children, progress=read_progress(children.pods))  # [] or none running: None
            build = lambda: _build(model, producers, models)  # noqa: E731
            result = plan(body, children, producers, datetime.now(UTC), build)
            _carry_out(kube, body, result)
    old = body.get("status") or {}
    METRICS.observe_transition(kind, old, result.status)
    METRICS.track_phase(kind, namespace, name, result.status.get("phase"))
    if result.status.get("phase") != old.get("phase"):
        _reconcile_consumers((kind, name), namespace, models)
    return result


def _carry_out(kube: Kube, body: dict[str, Any], result: Plan) -> None:
    """Create, delete, patch status, then post events (status last but one: a failed create leaves the
    status as it was, and the next reconcile tries again)."""
    meta, kind = body["metadata"], body["kind"]
    for manifest in result.create:
        kube.create(manifest)
    if result.delete_job:
        kube.delete("Job", meta["namespace"], child_name(kind, meta["name"]))
    if result.restart:  # pods gone before the Job is, so two generations of a stage never overlap
        kube.delete("Job", meta["namespace"], child_name(kind, meta["name"]), propagation="Foreground")
        kube.delete("ConfigMap", meta["namespace"], child_name(kind, meta["name"]))
    if result.patch:
        kube.patch_status(kind, meta["namespace"], meta["name"], result.patch)
    for event in result.events:
        kube.post_event(body, event)


def _build(
    model: AnyResource | None, producers: dict[Key, dict[str, Any] | None], models: dict[Key, AnyResource]
) -> list[dict[str, Any]]:
    """The children's manifests; an SFTJob without a model trains the model of its bank (as `adacot
    run` does, through the runner's own rule)."""
    assert model is not None  # plan builds only when the resource validated
    filled = with_default_model(model, models)
    base = getattr(filled.spec, "model", None) if filled.kind == "SFTJob" else None
    done = {k: v for k, v in producers.items() if v is not None}
    return build_children(model, ResolvedInputs.from_producers(done, model=base), _State.settings)


def _reconcile_consumers(producer: Key, namespace: str, models: dict[Key, AnyResource]) -> None:
    """Chaining: the resources that read `producer` learn at once that it finished (or failed)."""
    for key, inputs in dependency_graph(models.values()).items():
        if producer in inputs:
            _safely(reconcile, key[0], namespace, key[1])


def _namespace(kube: Kube, namespace: str) -> dict[Key, dict[str, Any]]:
    """Every adacot resource of the namespace, by (kind, name)."""
    return {
        (kind, item["metadata"]["name"]): {**item, "kind": kind}
        for kind in RESOURCE_KINDS
        for item in kube.list(kind, namespace)
    }


def _parse(kind: str, body: Mapping[str, Any]) -> AnyResource | None:
    """The resource's model; None when it does not validate (its own reconcile reports ValidationFailed)."""
    try:
        return cast(AnyResource, RESOURCE_KINDS[kind].model_validate(body))
    except ValidationError:
        return None


def _on_resource_event(*, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
    kind, ns = str(body.get("kind")), namespace or "default"
    CACHE.observe(kind, ns, dict(body), deleted=type == "DELETED")
    if type == "DELETED":
        METRICS.forget(kind, ns, name)
        if _State.kube is not None:
            _State.kube.forget(kind, ns, name)
        return
    # Only a MODIFIED event can be the echo of a status write: kopf's (re)listing (type None) may
    # follow a watch gap and stand for versions never seen one by one.
    echo = str(body.get("metadata", {}).get("resourceVersion") or "") if type == "MODIFIED" else ""
    _safely(partial(reconcile, echo=echo or None), kind, ns, name)


def _resync_forever(interval_s: float = TIMER_INTERVAL_S) -> None:
    """Reconcile every resource the watch has shown, one after another, every `interval_s`."""
    while True:
        time.sleep(interval_s)
        resync()


def _take_over() -> None:
    """Just elected: reconcile everything seen while following, off the election's thread."""
    threading.Thread(target=resync, name="adacot-takeover", daemon=True).start()


def resync() -> None:
    """One pass of the safety net over the cache's resources (valid or not)."""
    for namespace, kind, name in CACHE.resources():
        _safely(reconcile, kind, namespace, name)


def _on_child_event(*, labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
    kind = KIND_OF_LABEL.get(labels.get(KIND_LABEL, ""))
    owner = labels.get(NAME_LABEL)
    if kind and owner:
        _safely(reconcile, kind, namespace or "default", owner)


def _safely(func: Any, kind: str, namespace: str, name: str) -> None:
    """Event and timer handlers never raise into kopf (it would only log): the error is counted by
    `reconciling` and logged here once; the next event or timer tick retries. A follower (another
    replica holds the Lease) does nothing: the leader's takeover resync catches up on what it skipped."""
    if _State.elector is not None and not _State.elector.leading:
        return
    try:
        func(kind, namespace, name)
    except Exception:
        log.exception("reconcile of %s %s/%s failed", kind, namespace, name)


def _lock(kind: str, namespace: str, name: str) -> threading.Lock:
    with _State.guard:
        return _State.locks.setdefault((kind, namespace, name), threading.Lock())


def _kube() -> Kube:
    if _State.kube is None:  # handlers called before startup (tests driving them directly)
        _State.kube = Kube.connect()
    return _State.kube


def _register() -> None:
    """One watch handler per kind (id `<kind>_event`), plus the child watches; none of them needs a
    finalizer (see the module docstring)."""
    for kind, cls in RESOURCE_KINDS.items():
        short = kind.lower()
        kopf.on.event(GROUP, VERSION, cls.PLURAL, id=f"{short}_event")(_on_resource_event)
    kopf.on.event("batch", "v1", "jobs", id="jobs_event", labels=MANAGED)(_on_child_event)
    kopf.on.event("v1", "pods", id="pods_event", labels=MANAGED)(_on_child_event)


CACHE: NamespaceCache[AnyResource] = NamespaceCache(_parse)
_register()
