"""What a finished stage tells the operator: its summary, as status fields.

Called by `adacot_operator.status` (pure). The summary is the JSON object the stage writes to its
termination message (`adacot.pipelines.termination`); the kubelet copies it into the
pod's `state.terminated.message`.

Limits: a sharded (Indexed) Job has one message per pod; the one that finished last (the shard that
merged) is taken. Its `sha256` key (the artifact's MANIFEST.json hash, adacot.pipelines.termination)
becomes `output.sha256`; only the resource's own Job's pods are read. Fields that do not validate
against the status models are dropped, not raised: a summary is informative and must never make
status computation fail.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from adacot.api.status import (
    DifficultyBankStatus,
    DistillationJobStatus,
    GradingRunStatus,
    OutputStatus,
    ResourceStatus,
    SFTJobStatus,
    StageMetrics,
)

STATUS_MODELS: dict[str, type[ResourceStatus]] = {
    "GradingRun": GradingRunStatus,
    "DifficultyBank": DifficultyBankStatus,
    "DistillationJob": DistillationJobStatus,
    "SFTJob": SFTJobStatus,
}

#: The summary key that counts each kind's records (stage summaries name them differently).
_RECORDS_KEY = {"GradingRun": "questions", "DifficultyBank": "questions", "DistillationJob": "kept"}
#: The summary key that counts the inputs read.
_INPUTS_KEY = {"GradingRun": "questions", "DifficultyBank": "read", "DistillationJob": "sampled"}
#: Fields of the shared status that a summary must never set.
_SHARED = frozenset(ResourceStatus.model_fields)


def termination_summary(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON object of the successful container that finished last; {} when there is none."""
    found: list[tuple[str, dict[str, Any]]] = []
    for pod in pods:
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or {}
            parsed = _json_object(terminated.get("message")) if terminated.get("exitCode") == 0 else None
            if parsed is not None:
                found.append((terminated.get("finishedAt") or "", parsed))
    return max(found, key=lambda f: f[0])[1] if found else {}


def summary_fields(kind: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Status fields (by python name) filled from a stage summary: `metrics`, the kind's own figures
    and `output.records` / `output.sha256`."""
    if not summary:
        return {}
    metrics = dict(summary)
    if kind in _INPUTS_KEY and "records" not in metrics:
        metrics["records"] = summary.get(_INPUTS_KEY[kind])
    fields: dict[str, Any] = {"metrics": _valid(StageMetrics, metrics)}
    own = {k: v for k, v in summary.items() if k not in _SHARED}
    fields.update(_valid(STATUS_MODELS[kind], own).model_dump(exclude_unset=True))
    records = summary.get("records", summary.get(_RECORDS_KEY.get(kind, "")))
    fields["output"] = _valid(OutputStatus, {"records": records, "sha256": summary.get("sha256")})
    return fields


def _valid(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """`model` from the keys of `data` it knows, dropping None values and values that do not validate."""
    known = set(model.model_fields)
    clean = {k: v for k, v in data.items() if k in known and v is not None}
    while True:
        try:
            return model.model_validate(clean)
        except ValidationError as err:
            bad = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
            if not bad & clean.keys():
                return model()
            clean = {k: v for k, v in clean.items() if k not in bad}


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
