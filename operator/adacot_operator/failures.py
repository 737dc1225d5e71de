"""Readable reasons for what went wrong with a stage's Job and pods.

Called by `adacot_operator.status` (pure, no API access). Two questions are answered here:

- `job_failure`: the Job has failed for good (its `Failed` condition is True) — why? Kubernetes only says
  BackoffLimitExceeded, DeadlineExceeded or PodFailurePolicy; the pods often say more (OOMKilled,
  Evicted, an image that never pulled), and the more specific pod reason wins. A Job failed by the pod
  failure policy on the stage's VALIDATION_FAILED_EXIT_CODE is ValidationFailed: the stage rejected
  its inputs (e.g. P_eval graded differently from the bank) and says why in its log tail.
- `pod_stall`: the Job is still active but a pod cannot make progress (image pull errors once past a
  grace period, unschedulable, crash loop). Kubernetes never fails such a Job by itself (unless
  activeDeadlineSeconds runs out), so the operator reports it on the Running condition without
  declaring the stage failed.
- `creation_failure`: the Job has no pods because the API server refuses them (quota, admission
  webhook, missing ServiceAccount): the Job controller's FailedCreate event says why; reported the same
  way.

Limits: reasons come from the fields the kubelet and scheduler set (container state reasons, pod
`status.reason`, the PodScheduled condition); a node that dies without updating its pods is invisible
here. Messages carry the container's termination message (the stage's own words, capped), never env.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adacot.api.stage_pod import VALIDATION_FAILED_EXIT_CODE
from adacot_operator.names import COMPLETION_INDEX_KEY

OOM_KILLED = "OOMKilled"
IMAGE_PULL_ERROR = "ImagePullError"
CRASH_LOOP = "CrashLoop"
UNSCHEDULABLE = "Unschedulable"
FAILED_CREATE = "FailedCreate"
EVICTED = "Evicted"
DEADLINE_EXCEEDED = "DeadlineExceeded"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
VALIDATION_FAILED = "ValidationFailed"
INPUT_FAILED = "InputFailed"
POD_FAILURE_POLICY = "PodFailurePolicy"
"""The Job's Failed reason when a podFailurePolicy FailJob rule matched (Kubernetes' name)."""

#: Container waiting reasons that mean the image will not come (kubelet's names).
_IMAGE_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
#: Pull failures that may clear up by themselves; reported after IMAGE_PULL_GRACE (a bad name: at once).
_TRANSIENT_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
IMAGE_PULL_GRACE = timedelta(seconds=90)
#: Longest piece of a termination message copied into a condition message.
_MESSAGE_CAP = 300


@dataclass(frozen=True)
class Failure:
    """A reason (CamelCase, from the constants above) and a one-line human message."""

    reason: str
    message: str


def job_failure(job: dict[str, Any], pods: Iterable[dict[str, Any]]) -> Failure | None:
    """Why the Job failed, or None while it has not (its Failed condition is not True)."""
    condition = condition_of(job.get("status", {}), "Failed")
    if condition is None or condition.get("status") != "True":
        return None
    pods = list(pods)
    job_reason = condition.get("reason", "")
    rejected = _rejected(pods) if job_reason == POD_FAILURE_POLICY else None
    if rejected is not None:
        return rejected
    specific = _pod_failure(pods)
    if specific is not None:
        return specific
    reason = DEADLINE_EXCEEDED if job_reason == DEADLINE_EXCEEDED else BACKOFF_LIMIT_EXCEEDED
    detail = condition.get("message") or "the Job failed"
    last = _last_exit(pods)
    return Failure(reason, f"{detail}{'; ' + last if last else ''}")


def rank_failure(pods: Iterable[dict[str, Any]]) -> str | None:
    """'node R (pod P) exited with code N (reason): message' for the pod that failed first: in a gang
    (a multi-node SFTJob) the others die because it did, so the first one to fail says why."""
    exits = [
        (t.get("finishedAt") or "", pod, t)
        for pod in pods
        for _, t in _terminated(pod)
        if t.get("exitCode", 0) != 0
    ]
    if not exits:
        return None
    _, pod, terminated = min(exits, key=lambda e: e[0])
    meta = pod.get("metadata") or {}
    index = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}.get(COMPLETION_INDEX_KEY, "?")
    reason = terminated.get("reason")
    why = f" ({reason})" if reason and reason != "Error" else ""
    text = f"node {index} (pod {_name(pod)}) exited with code {terminated.get('exitCode')}{why}"
    message = (terminated.get("message") or "").strip()
    return f"{text}: {_cap(message)}" if message else text


def pod_stall(pods: Iterable[dict[str, Any]], now: datetime | None = None) -> Failure | None:
    """The first pod problem that keeps an active Job from progressing, or None. With `now`, a pull
    that may still succeed (ErrImagePull, ImagePullBackOff, RegistryUnavailable: registries hiccup) is
    reported only once the pod is older than IMAGE_PULL_GRACE."""
    for pod in pods:
        for name, waiting in _waiting(pod):
            if waiting.get("reason") in _IMAGE_WAITING and not _in_grace(pod, waiting, now):
                return Failure(IMAGE_PULL_ERROR, _say(pod, name, waiting))
            if waiting.get("reason") == "CrashLoopBackOff":
                return Failure(CRASH_LOOP, _say(pod, name, waiting))
        scheduled = condition_of(pod.get("status", {}), "PodScheduled")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == UNSCHEDULABLE:
            return Failure(UNSCHEDULABLE, f"pod {_name(pod)}: {scheduled.get('message', 'unschedulable')}")
    return None


def creation_failure(events: Iterable[dict[str, Any]]) -> Failure | None:
    """Why the Job's pods cannot be created (quota, an admission webhook, a missing ServiceAccount):
    the Job controller's latest FailedCreate event on it, whose message is the API server's refusal.
    Kubernetes never fails such a Job; the operator says so on the Running condition."""
    found = [e for e in events if e.get("reason") == FAILED_CREATE]
    if not found:
        return None
    latest = max(found, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    words = _cap((latest.get("message") or "").removeprefix("Error creating: ")) or "refused"
    return Failure(FAILED_CREATE, f"the stage's pods cannot be created: {words}")


def _in_grace(pod: dict[str, Any], waiting: dict[str, Any], now: datetime | None) -> bool:
    if now is None or waiting.get("reason") not in _TRANSIENT_PULL:
        return False
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    try:
        born = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return False
    return now - born < IMAGE_PULL_GRACE


def _rejected(pods: list[dict[str, Any]]) -> Failure | None:
    """ValidationFailed with the stage's own words when a pod exited with VALIDATION_FAILED_EXIT_CODE."""
    for pod in pods:
        for name, terminated in _terminated(pod):
            if terminated.get("exitCode") == VALIDATION_FAILED_EXIT_CODE:
                words = _cap((terminated.get("message") or "").strip()) or "see the pod's log"
                return Failure(
                    VALIDATION_FAILED, f"pod {_name(pod)} container {name} rejected its inputs: {words}"
                )
    return None


def _pod_failure(pods: list[dict[str, Any]]) -> Failure | None:
    """The most specific reason the failed pods show: OOM first (the usual GPU-stage failure)."""
    for pod in pods:
        for name, terminated in _terminated(pod):
            if terminated.get("reason") == OOM_KILLED:
                return Failure(OOM_KILLED, f"pod {_name(pod)} container {name} ran out of memory")
    for pod in pods:
        if pod.get("status", {}).get("reason") == EVICTED:
            return Failure(EVICTED, f"pod {_name(pod)}: {pod['status'].get('message', 'evicted')}")
    return pod_stall(p for p in pods if not _is_crash_loop_only(p))


def _is_crash_loop_only(pod: dict[str, Any]) -> bool:
    """A crash loop in a failed Job is just the way it used its retries: the exit code says more."""
    return all(w.get("reason") == "CrashLoopBackOff" for _, w in _waiting(pod)) and any(_waiting(pod))


def _last_exit(pods: list[dict[str, Any]]) -> str:
    """'pod P exited with code N: <message>' for the pod that finished last with a non-zero code."""
    exits = [
        (t.get("finishedAt") or "", pod, name, t)
        for pod in pods
        for name, t in _terminated(pod)
        if t.get("exitCode", 0) != 0
    ]
    if not exits:
        return ""
    _, pod, name, terminated = max(exits, key=lambda e: e[0])
    text = f"pod {_name(pod)} container {name} exited with code {terminated.get('exitCode')}"
    message = (terminated.get("message") or "").strip()
    return f"{text}: {_cap(message)}" if message else text


def _say(pod: dict[str, Any], container: str, waiting: dict[str, Any]) -> str:
    detail = waiting.get("message") or waiting.get("reason", "")
    return f"pod {_name(pod)} container {container}: {_cap(detail)}"


def _cap(text: str) -> str:
    """The last line-ish part of a message, short enough for a condition (log tails can be long)."""
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CAP else "…" + text[-_MESSAGE_CAP:]


def _statuses(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    status = pod.get("status", {})
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def _waiting(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            yield cs.get("name", "?"), waiting


def _terminated(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Terminated states, current and the previous one (a restarted container keeps the OOM there)."""
    for cs in _statuses(pod):
        for key in ("state", "lastState"):
            terminated = (cs.get(key) or {}).get("terminated")
            if terminated:
                yield cs.get("name", "?"), terminated


def condition_of(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of this type in a Kubernetes status (any kind), or None."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))
