"""Status of a resource as one pure function of the resource, its observed children and its producers.

Called by `adacot_operator.reconcile` on every reconcile; unit-tested as tables of child states. The
output is the resource's `status` as a JSON dict (camelCase, the shape of adacot.api.status), always
carrying every condition type so `kubectl wait --for=condition=X` has something to read. Rules:

- a condition's lastTransitionTime changes only when its status flips (else the old time is kept);
- `phase` is derived from the conditions by `derive_phase`, never from "the last condition";
- `Ready`, `Reconciling` and `Stalled` follow kstatus (sigs.k8s.io/cli-utils), so `kubectl wait
  --for=condition=Ready`, Argo CD and Flux judge every kind alike; they are derived from the phase by
  `kstatus_conditions` (Reconciling True while working toward the spec, Stalled True on a failure that
  needs a person, Ready True once Succeeded, or Ready for a bank), and `observedGeneration` (top-level
  and per condition) is the generation they were computed from;
- a finished stage stays finished when its Job is gone (TTL, suspend of a finished resource);
- once the Job exists, InputsReady stays True: the inputs were read, a producer deleted later does not
  send the consumer back to waiting;
- `progress` is what the running stage's endpoint answered (`Children.progress`, read by the
  handlers), validated; unreadable or invalid keeps the old value; closed at 100 % on success;
- `output`'s claim and path come from the spec (`output_location`) on every reconcile, whatever the
  status said before: a pod cannot write status (no token), and if anything did, the next reconcile
  puts the spec's location back; records and sha256 come only from this resource's own Job's
  termination message.

Limits: no I/O and no clock of its own (`now` is passed in); a Job status the kubelet has not written
yet reads as "starting" (Pending).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.sft_job import SFTJob
from adacot.api.status import (
    Condition,
    ConditionType,
    OutputStatus,
    Phase,
    Progress,
    ResourceStatus,
    SFTJobStatus,
)
from adacot_operator import failures
from adacot_operator.failures import Failure, condition_of
from adacot_operator.resolve import output_location
from adacot_operator.summary import STATUS_MODELS, summary_fields, termination_summary

T = ConditionType
Key = tuple[str, str]
#: (status, reason, message) of one condition.
Want = tuple[str, str, str]


@dataclass(frozen=True)
class Children:
    """What the operator observed of a resource's children (None / [] when absent)."""

    job: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    pvc: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    """What the running stage's progress endpoint answered (adacot_operator.progress), unvalidated."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """FailedCreate events on the Job, read only while it has no pods (adacot_operator.kube)."""


def compute_status(
    resource: dict[str, Any], children: Children, producers: dict[Key, dict[str, Any] | None], now: datetime
) -> dict[str, Any]:
    """The status to write (see the module docstring). `producers` maps each input's (kind, name) to
    its live object, or None when it does not exist (yet)."""
    kind = resource["kind"]
    old = _old_status(kind, resource.get("status"))
    generation = resource.get("metadata", {}).get("generation")
    new = old.model_copy(deep=True)
    want = _defaults()
    try:
        model = cast(AnyResource, RESOURCE_KINDS[kind].model_validate(resource))
    except ValidationError as err:
        _fail(want, Failure(failures.VALIDATION_FAILED, _first_error(err)), inputs=True)
    else:
        _observe(model, old, new, want, children, producers, now)
    want.update(kstatus_conditions(kind, want))
    new.conditions = _merge(old.conditions, want, now, generation)
    new.observed_generation = generation
    new.phase = derive_phase(new.conditions, kind)
    return new.model_dump(mode="json", by_alias=True, exclude_none=True)


def derive_phase(conditions: list[Condition], kind: str) -> Phase:
    """The one-word summary, in precedence order: Failed, Succeeded (Ready for banks), Suspended,
    WaitingForInputs, Queued, Running, Pending."""
    on = {c.type for c in conditions if c.status == "True"}
    off = {c.type for c in conditions if c.status == "False"}
    return _phase(on, off, kind)


def kstatus_conditions(kind: str, want: dict[T, Want]) -> dict[T, Want]:
    """Ready, Reconciling and Stalled (kstatus's "abnormal-true" pair and the Ready it does not read but
    kubectl wait and Flux do) for the other conditions in `want`, through their phase. A suspended
    resource is neither reconciling nor stalled (paused on purpose) and not Ready."""
    phase = _phase(
        {t for t, w in want.items() if w[0] == "True"}, {t for t, w in want.items() if w[0] == "False"}, kind
    )
    stalled: Want = ("False", "NotStalled", "")
    if phase is Phase.Failed:
        _, reason, message = want[T.Failed]
        return {T.Ready: ("False", reason, message), T.Reconciling: ("False", reason, ""),
                T.Stalled: ("True", reason, message)}  # fmt: skip
    if phase in (Phase.Succeeded, Phase.Ready):
        ready = (
            ("True", "BankReady", "the bank can be sampled from")
            if kind == "DifficultyBank"
            else ("True", "Succeeded", "the stage finished and wrote its artifact")
        )
        return {T.Ready: ready, T.Reconciling: ("False", phase.value, ""), T.Stalled: stalled}
    if phase is Phase.Suspended:
        return {T.Ready: ("False", "Suspended", ""), T.Reconciling: ("False", "Suspended", ""),
                T.Stalled: stalled}  # fmt: skip
    _, reason, message = want[_EXPLAINS[phase]]
    detail = f"{reason}: {message}" if message else reason
    return {T.Ready: ("False", phase.value, detail), T.Reconciling: ("True", phase.value, detail),
            T.Stalled: stalled}  # fmt: skip


#: The condition whose reason explains each in-progress phase.
_EXPLAINS = {Phase.WaitingForInputs: T.InputsReady, Phase.Queued: T.Admitted, Phase.Running: T.Running,
             Phase.Pending: T.Running}  # fmt: skip


def _phase(on: set[T], off: set[T], kind: str) -> Phase:
    if T.Failed in on:
        return Phase.Failed
    if T.Complete in on:
        return Phase.Ready if kind == "DifficultyBank" else Phase.Succeeded
    if T.Suspended in on:
        return Phase.Suspended
    if T.InputsReady in off:
        return Phase.WaitingForInputs
    if T.Admitted in off:
        return Phase.Queued
    return Phase.Running if T.Running in on else Phase.Pending


def inputs_state(producers: dict[Key, dict[str, Any] | None]) -> tuple[Failure | None, list[str]]:
    """(a failed producer, descriptions of the producers still awaited): both empty when all are done."""
    waiting: list[str] = []
    for (kind, name), body in sorted(producers.items()):
        status = (body or {}).get("status") or {}
        if body is None:
            waiting.append(f"{kind} {name} does not exist yet")
        elif _is_true(status, "Failed"):
            reason = (condition_of(status, "Failed") or {}).get("reason", "Failed")
            return Failure(failures.INPUT_FAILED, f"{kind} {name} failed ({reason})"), []
        elif not (_is_true(status, "Complete") or _is_true(status, "Ready")):
            waiting.append(f"{kind} {name} is {status.get('phase') or 'Pending'}")
    return None, waiting


def _observe(
    model: AnyResource,
    old: ResourceStatus,
    new: ResourceStatus,
    want: dict[T, Want],
    children: Children,
    producers: dict[Key, dict[str, Any] | None],
    now: datetime,
) -> None:
    """Fill `want` (and the non-condition fields of `new`) from the observed world."""
    job = children.job
    finished = _is_on(old, T.Complete) or (_is_on(old, T.Failed) and _failed_by_job(old))
    if job is None and finished:
        want.update({c.type: (c.status, c.reason, c.message) for c in old.conditions if c.type in want})
        return
    if job is None:
        failed, waiting = inputs_state(producers)
        if failed is not None:
            _fail(want, failed, inputs=True)
            return
        if waiting:
            want[T.InputsReady] = ("False", "WaitingForInput", "; ".join(waiting))
            return
    if getattr(model.spec, "suspend", False) and not _job_finished(job):
        want[T.Suspended] = (
            "True",
            "SuspendedBySpec",
            "spec.suspend is true: the Job is removed, artifacts kept",
        )
        want[T.Running] = ("False", "Suspended", "")
        return
    if job is not None:
        new.output = output_location(model).model_copy(update=_counts(old.output))
        _observe_job(model, job, children, old, new, want, now)


def _observe_job(
    model: AnyResource,
    job: dict[str, Any],
    children: Children,
    old: ResourceStatus,
    new: ResourceStatus,
    want: dict[T, Want],
    now: datetime,
) -> None:
    kind, pods = model.KIND, children.pods
    status = job.get("status") or {}
    new.start_time = parse_time(status.get("startTime")) or new.start_time
    failure = failures.job_failure(job, pods)
    if failure is not None and _gang_restart(model, job, failure, pods, old, new):
        assert isinstance(new, SFTJobStatus)
        budget = getattr(model.spec, "backoff_limit", 0)
        detail = f"restarting all {getattr(model.spec, 'nodes', 1)} nodes from the last checkpoint"
        want[T.Running] = (
            "False",
            GANG_RESTART,
            f"{new.last_restart_reason}; {detail} (gang restart {new.restarts} of {budget})",
        )
    elif failure is not None:
        _fail(want, failure)
        new.completion_time = parse_time(status.get("completionTime")) or new.completion_time or now
    elif _is_true(status, "Complete"):
        _complete(kind, status, pods, new, want, now)
    elif job.get("spec", {}).get("suspend"):
        want[T.Admitted] = ("False", "WaitingForAdmission", "the Job waits in its queue")
    else:
        want[T.Admitted] = ("True", "Admitted", "")
        want[T.Running] = _running(status, pods, children.events, now)
        new.progress = _progress(children.progress) or new.progress


GANG_RESTART = "GangRestart"
"""The Running reason while a multi-node SFTJob's failed Job is replaced (adacot_operator.reconcile)."""
#: Job failures a restart cannot mend: the stage rejected its input, or the wall-clock limit ran out.
_FINAL = frozenset({failures.VALIDATION_FAILED, failures.DEADLINE_EXCEEDED})


def _gang_restart(
    model: AnyResource,
    job: dict[str, Any],
    failure: Failure,
    pods: list[dict[str, Any]],
    old: ResourceStatus,
    new: ResourceStatus,
) -> bool:
    """Whether the failed Job of a multi-node SFTJob is to be replaced as a whole (a gang restart)
    rather than fail the resource; counts the restart in `new` once, while the Job is not yet being
    deleted (the reconcile that decides it deletes it). The failing rank comes first in the reason."""
    if not (isinstance(model, SFTJob) and model.spec.nodes > 1) or failure.reason in _FINAL:
        return False
    assert isinstance(old, SFTJobStatus) and isinstance(new, SFTJobStatus)
    if job["metadata"].get("deletionTimestamp"):  # already decided: only a restart's deletion says so
        running = old.condition(T.Running)
        return running is not None and running.reason == GANG_RESTART
    used = old.restarts or 0
    if used >= model.spec.backoff_limit:
        return False
    new.restarts = used + 1
    new.last_restart_reason = failures.rank_failure(pods) or failure.message
    return True


def _complete(
    kind: str,
    status: dict[str, Any],
    pods: list[dict[str, Any]],
    new: ResourceStatus,
    want: dict[T, Want],
    now: datetime,
) -> None:
    want[T.Admitted] = ("True", "Admitted", "")
    want[T.Running] = ("False", "Completed", "")
    want[T.Complete] = ("True", "JobComplete", "the stage finished and wrote its artifact")
    new.completion_time = parse_time(status.get("completionTime")) or new.completion_time or now
    summary = termination_summary(pods)
    fields = summary_fields(kind, summary)
    if "output" in fields and new.output is not None:
        fields["output"] = new.output.model_copy(update=_counts(fields["output"]))
    for name, value in fields.items():
        setattr(new, name, value)
    progress = new.progress or Progress()
    counted = summary.get(_ITEMS_KEY.get(kind, ""))  # a stage too short for any progress read
    total = progress.total if progress.total is not None else counted if _count(counted) else progress.done
    new.progress = Progress(done=total, total=total, percent=100.0)


#: The summary key counting a kind's progress items (questions, samples, steps).
_ITEMS_KEY = {"GradingRun": "questions", "DifficultyBank": "read", "DistillationJob": "sampled",
              "SFTJob": "global_step"}  # fmt: skip


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _running(status: dict[str, Any], pods: list[dict[str, Any]], events: list[dict[str, Any]],
             now: datetime) -> Want:  # fmt: skip
    stall = failures.pod_stall(pods, now) or (None if pods else failures.creation_failure(events))
    if stall is not None:
        return ("False", stall.reason, stall.message)
    if any(p.get("status", {}).get("phase") == "Running" for p in pods) or status.get("ready"):
        return ("True", "PodsRunning", f"{status.get('active', 0)} pod(s) active")
    return ("False", "PodsStarting", "waiting for the stage's pods to start")


def _fail(want: dict[T, Want], failure: Failure, inputs: bool = False) -> None:
    want[T.Failed] = ("True", failure.reason, failure.message)
    want[T.Running] = ("False", failure.reason, "")
    if inputs:
        want[T.InputsReady] = ("False", failure.reason, failure.message)


def _defaults() -> dict[T, Want]:
    return {
        T.InputsReady: ("True", "InputsReady", ""),
        T.Admitted: ("True", "NoQueue", ""),
        T.Running: ("False", "NotStarted", ""),
        T.Suspended: ("False", "NotSuspended", ""),
        T.Complete: ("False", "NotComplete", ""),
        T.Failed: ("False", "NoFailure", ""),
    }


def _merge(
    old: list[Condition], want: dict[T, Want], now: datetime, generation: int | None
) -> list[Condition]:
    """New conditions, keeping each old lastTransitionTime whose status did not flip."""
    before = {c.type: c for c in old}
    merged = []
    for type_, (status, reason, message) in want.items():
        prev = before.get(type_)
        flipped = prev is None or prev.status != status
        merged.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if flipped or prev is None else prev.last_transition_time,
                observed_generation=generation,
            )
        )
    return merged


def _old_status(kind: str, raw: Any) -> ResourceStatus:
    """The status read back; an unreadable one (edited by hand) is started afresh rather than crashing."""
    model = STATUS_MODELS[kind]
    try:
        return model.model_validate(raw or {})
    except ValidationError:
        return model()


def _failed_by_job(status: ResourceStatus) -> bool:
    """Failures that came from a Job are final; input and validation failures are re-checked."""
    cond = status.condition(T.Failed)
    return cond is not None and cond.reason not in (failures.INPUT_FAILED, failures.VALIDATION_FAILED)


def _job_finished(job: dict[str, Any] | None) -> bool:
    """A Job that completed or failed: suspending its resource changes nothing any more."""
    status = (job or {}).get("status") or {}
    return _is_true(status, "Complete") or _is_true(status, "Failed")


def _counts(output: OutputStatus | None) -> dict[str, Any]:
    """Records and sha256 of `output` where set; never claim or path (the spec decides those)."""
    known = output.model_dump(exclude_none=True) if output is not None else {}
    return {k: v for k, v in known.items() if k in ("records", "sha256")}


def _progress(raw: dict[str, Any] | None) -> Progress | None:
    """The endpoint's answer as Progress; None when absent or invalid (a pod's answer is not trusted)."""
    try:
        return Progress.model_validate(raw) if raw else None
    except ValidationError:
        return None


def _is_on(status: ResourceStatus, type_: T) -> bool:
    cond = status.condition(type_)
    return cond is not None and cond.status == "True"


def _is_true(status: dict[str, Any], type_: str) -> bool:
    return (condition_of(status, type_) or {}).get("status") == "True"


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes RFC 3339 time (Z suffix) as an aware datetime; None for None or empty."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']} ({err.error_count()} problem(s))"
