"""Reconcile decisions as data: given a resource, its observed children and its producers, what to do.

Called by `adacot_operator.handlers`, which gathers the inputs through `adacot_operator.kube` and
carries the `Plan` out; unit-tested without any API. The rules:

- status comes from `compute_status`; only the top-level status fields that changed are patched (so an
  unchanged world writes nothing; progress only when the stage's endpoint answered something new);
- children are built (by the caller's `build`, i.e. builders.children.build_children) only when there
  is no Job, the inputs are ready, the resource is neither suspended nor finished: creating is
  idempotent by name, so a restarted operator that re-plans creates nothing twice;
- `spec.suspend` deletes an unfinished Job (pods go with it) and keeps the ConfigMap and volumes; the
  next plan after resuming creates the Job again and the stage resumes from its shards;
- a spec change that alters what an unfinished stage's pod would do (its Job's spec-hash differs from
  the one the current spec builds) restarts it: Job (foreground) and ConfigMap deleted, both created
  again by the next plan; fields that may not change after start are immutable in the CRD instead;
  status.observedGeneration advances only once an edit is judged (an edit that cannot be judged yet,
  inputs unresolved or refused by the pod policy, keeps the old one and is judged again next time);
- a multi-node SFTJob whose Job failed on one rank, with gang restarts left (status.restarts below
  spec.backoffLimit, counted by `compute_status`), is restarted the same way: every node together;
- a Kueue-suspended Job is never touched (Kueue un-suspends it on admission);
- every phase change, and every new reason a pod is stuck, becomes a Kubernetes Event.

Limits: a build that fails because a producer's output location is unknown waits (InputsReady False)
rather than failing (resolve.InputsError); one the pod policy refuses (policy.Refused: a hostPath volume,
another ServiceAccount, ...) ends Failed, reason ValidationFailed, naming the field and the setting; an
edit refused while a Job runs leaves that Job running its older spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adacot_operator import failures
from adacot_operator.failures import condition_of
from adacot_operator.policy import Refused
from adacot_operator.status import GANG_RESTART, Children, Key, compute_status

#: The condition that explains each phase (its reason and message go into the phase's Event).
_PHASE_CONDITION = {
    "Failed": "Failed",
    "Succeeded": "Complete",
    "Ready": "Complete",
    "Suspended": "Suspended",
    "WaitingForInputs": "InputsReady",
    "Queued": "Admitted",
    "Running": "Running",
    "Pending": "Running",
}
_STALLS = frozenset(
    {failures.IMAGE_PULL_ERROR, failures.CRASH_LOOP, failures.UNSCHEDULABLE, failures.FAILED_CREATE}
)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the resource."""

    type: str
    """Normal or Warning."""
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What one reconcile does."""

    status: dict[str, Any]
    """The full new status (for metrics and logs)."""
    patch: dict[str, Any]
    """Top-level status fields that changed; {} writes nothing."""
    create: list[dict[str, Any]] = field(default_factory=list)
    """Children to create (each skipped when it already exists)."""
    delete_job: bool = False
    restart: bool = False
    """The unfinished Job runs an older spec, or a multi-node run's Job failed on one rank (a gang
    restart): delete it (foreground: its pods first) and its ConfigMap; the next plan creates both from
    the current spec and the stage resumes from what it wrote (the last checkpoint)."""
    events: list[Event] = field(default_factory=list)


Build = Callable[[], list[dict[str, Any]]]


def plan(
    resource: dict[str, Any],
    children: Children,
    producers: dict[Key, dict[str, Any] | None],
    now: datetime,
    build: Build,
) -> Plan:
    """Decide one reconcile (see the module docstring). `build` returns the children's manifests and
    may raise ValueError (resolve.InputsError) when a producer's output is not known yet."""
    old = resource.get("status") or {}
    status = compute_status(resource, children, producers, now)
    create: list[dict[str, Any]] = []
    events: list[Event] = []
    if _should_create(status, children):
        try:
            create = build()
        except Refused as err:
            status = _refused(status, str(err), now)
        except ValueError as err:
            status = _waiting(status, str(err), now)
        else:
            kinds = ", ".join(f"{c.get('kind')} {c.get('metadata', {}).get('name')}" for c in create)
            events.append(Event("Normal", "Created", f"created {kinds}"))
    delete_job = _should_delete_job(resource, status, children)
    if delete_job:
        events.append(Event("Normal", "Suspended", "spec.suspend is true: deleted the Job, kept the volumes"))
    seen = old.get("observedGeneration")  # None: no record of what was acted on, so no judgement
    edited = seen is not None and seen != (resource.get("metadata") or {}).get("generation")
    gang = not delete_job and _gang_restart(status, children)
    judged = _runs_an_older_spec(status, children, build) if edited and not delete_job else False
    restart = gang or bool(judged)
    if judged is None:  # the edit could not be judged now: not acted on, so not observed either
        status = _observed(status, seen)
    if gang:
        running = condition_of(status, "Running") or {}
        events.append(Event("Warning", GANG_RESTART, str(running.get("message", ""))))
    elif restart:
        why = "the spec changed while the stage ran: deleting its Job, created again from the new spec"
        events.append(Event("Normal", "SpecChanged", f"{why}; it resumes from what it wrote"))
    moved = transition_events(old, status)  # a gang restart's phase move is told by its own Warning
    events = [e for e in moved if not (gang and e.reason == GANG_RESTART)] + events
    patch = {k: v for k, v in status.items() if old.get(k) != v}
    return Plan(
        status=status, patch=patch, create=create, delete_job=delete_job, restart=restart, events=events
    )


def transition_events(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    """One Event per phase change (Warning for Failed) and per new reason a pod is stuck."""
    events: list[Event] = []
    if new.get("phase") != old.get("phase"):
        cond = condition_of(new, _PHASE_CONDITION.get(new.get("phase", ""), "Running")) or {}
        kind = "Warning" if new.get("phase") == "Failed" else "Normal"
        text = f"{old.get('phase') or 'New'} -> {new.get('phase')}"
        message = cond.get("message")
        events.append(
            Event(kind, cond.get("reason", "PhaseChanged"), f"{text}: {message}" if message else text)
        )
    was, now = condition_of(old, "Running") or {}, condition_of(new, "Running") or {}
    if now.get("reason") in _STALLS and now.get("reason") != was.get("reason"):
        events.append(Event("Warning", now["reason"], now.get("message", "")))
    return events


def _should_create(status: dict[str, Any], children: Children) -> bool:
    on = {c["type"] for c in status.get("conditions", []) if c["status"] == "True"}
    return children.job is None and status.get("phase") == "Pending" and "InputsReady" in on


def _should_delete_job(resource: dict[str, Any], status: dict[str, Any], children: Children) -> bool:
    suspended = bool((resource.get("spec") or {}).get("suspend"))
    finished = status.get("phase") in ("Succeeded", "Ready", "Failed")
    return suspended and children.job is not None and not finished


def _gang_restart(status: dict[str, Any], children: Children) -> bool:
    """The status decided a gang restart (a multi-node SFTJob's Job failed on one rank, budget left)
    and the failed Job is not being deleted yet."""
    job = children.job
    if job is None or job["metadata"].get("deletionTimestamp"):
        return False
    failed = (condition_of(job.get("status") or {}, "Failed") or {}).get("status") == "True"
    return failed and (condition_of(status, "Running") or {}).get("reason") == GANG_RESTART


def _runs_an_older_spec(status: dict[str, Any], children: Children, build: Build) -> bool | None:
    """An unfinished Job whose spec-hash differs from the Job the current spec builds (judged when the
    generation moved past status.observedGeneration, i.e. once per edit). Fields that may
    not change after start are immutable in the CRD (CEL); everything else that changes what the pod
    does (image, resources, env, scheduling, inference settings) restarts it this way. A finished
    stage is not re-run: delete and re-apply the resource for that. None: not decidable now (the
    inputs do not resolve, or the pod policy refuses the new spec), so judged again next time."""
    job = children.job
    if job is None or job["metadata"].get("deletionTimestamp") or status.get("phase") not in _UNFINISHED:
        return False
    try:
        wanted = next((c for c in build() if c.get("kind") == "Job"), None)
    except (ValueError, Refused):  # inputs not resolvable now, or refused: not the moment to judge
        return None
    have, want = _spec_hash(job), _spec_hash(wanted or {})
    return have is not None and want is not None and have != want


_UNFINISHED = frozenset({"Pending", "Queued", "Running"})


def _spec_hash(obj: dict[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return next((str(v) for k, v in annotations.items() if k.endswith("/spec-hash")), None)


def _observed(status: dict[str, Any], generation: int | None) -> dict[str, Any]:
    """`status` saying it was computed for `generation` (top level and every condition): kstatus then
    reads the resource as still reconciling the newer spec."""
    conditions = [{**c, "observedGeneration": generation} for c in status.get("conditions", [])]
    return {**status, "observedGeneration": generation, "conditions": conditions}


def _waiting(status: dict[str, Any], message: str, now: datetime) -> dict[str, Any]:
    """`status` with InputsReady False (the producer's output is not known yet), and the phase and the
    kstatus pair (Ready False, Reconciling True) saying so."""
    stamp = now.isoformat().replace("+00:00", "Z")
    detail = f"WaitingForInput: {message}"
    new = {
        "InputsReady": {"status": "False", "reason": "WaitingForInput", "message": message},
        "Ready": {"status": "False", "reason": "WaitingForInputs", "message": detail},
        "Reconciling": {"status": "True", "reason": "WaitingForInputs", "message": detail},
    }
    conditions = [_set(c, new[c["type"]], stamp) if c["type"] in new else c for c in status["conditions"]]
    return {**status, "conditions": conditions, "phase": "WaitingForInputs"}


def _refused(status: dict[str, Any], message: str, now: datetime) -> dict[str, Any]:
    """`status` Failed with reason ValidationFailed: the operator's pod policy, or a conflict of
    spec.podTemplate with what the operator owns, refused the spec (adacot_operator.policy.Refused).
    Re-checked on every reconcile like any validation failure, so fixing the spec or the policy resumes."""
    stamp = now.isoformat().replace("+00:00", "Z")
    reason = failures.VALIDATION_FAILED
    new = {
        "Failed": {"status": "True", "reason": reason, "message": message},
        "Running": {"status": "False", "reason": reason, "message": ""},
        "Ready": {"status": "False", "reason": reason, "message": message},
        "Reconciling": {"status": "False", "reason": reason, "message": ""},
        "Stalled": {"status": "True", "reason": reason, "message": message},
    }
    conditions = [_set(c, new[c["type"]], stamp) if c["type"] in new else c for c in status["conditions"]]
    return {**status, "conditions": conditions, "phase": "Failed"}


def _set(condition: dict[str, Any], update: dict[str, str], stamp: str) -> dict[str, Any]:
    """`condition` updated; its lastTransitionTime moves only when its status changes."""
    moved = condition.get("status") != update["status"]
    return {**condition, **update, **({"lastTransitionTime": stamp} if moved else {})}
