"""The Argo CD health check (deploy/argocd/health.lua) run under Lua 5.1, Argo CD's dialect (gopher-lua),
against a table of status fixtures; and the copies of it that ship (argocd-cm snippet, chart file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
KINDS = ("GradingRun", "DifficultyBank", "DistillationJob", "SFTJob")
T0 = "2026-11-26T12:00:00Z"


def cond(ctype: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": T0}


def resource(kind: str, status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "adacot.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "pool", "namespace": "ml", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run health.lua the way Argo CD does: `obj` a global table, the script's return value the result."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert runtime.eval("_VERSION") == "Lua 5.1"
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(HEALTH_LUA.read_text(encoding="utf-8"))
    return dict(result.items())


WAITING = cond("InputsReady", "False", "WaitingForInput", "GradingRun pool is Running")
CASES: list[tuple[str, dict[str, Any] | None, int, str, str]] = [
    # (case, status, generation, expected status, expected message)
    ("no status yet", None, 1, "Progressing", "Waiting for the adacot operator to report status"),
    (
        "complete but for an older generation",
        {"observedGeneration": 1, "phase": "Succeeded", "conditions": [cond("Complete", "True", "Done")]},
        2,
        "Progressing",
        "Waiting for the operator to observe generation 2",
    ),
    (
        "status without observedGeneration",
        {"phase": "Running"},
        3,
        "Progressing",
        "Waiting for the operator to observe generation 3",
    ),
    (
        "failed with a reason",
        {
            "observedGeneration": 1,
            "phase": "Failed",
            "conditions": [cond("Failed", "True", "OOMKilled", "pod pool-grade-0 used 64Gi")],
        },
        1,
        "Degraded",
        "OOMKilled: pod pool-grade-0 used 64Gi",
    ),
    (
        "stalled (kstatus) with a reason",
        {
            "observedGeneration": 1,
            "phase": "Failed",
            "conditions": [
                cond("Ready", "False", "ImagePullError"),
                cond("Stalled", "True", "ImagePullError", "image x not found"),
            ],
        },
        1,
        "Degraded",
        "ImagePullError: image x not found",
    ),
    (
        "ready (kstatus)",
        {
            "observedGeneration": 1,
            "phase": "Succeeded",
            "conditions": [
                cond("Ready", "True", "Succeeded", "wrote its artifact"),
                cond("Stalled", "False", "NotStalled"),
            ],
        },
        1,
        "Healthy",
        "Succeeded: wrote its artifact",
    ),
    (
        "reconciling (kstatus) is progressing",
        {
            "observedGeneration": 1,
            "phase": "Running",
            "conditions": [cond("Reconciling", "True", "Running"), cond("Ready", "False", "Running")],
        },
        1,
        "Progressing",
        "Running",
    ),
    ("failed phase only", {"observedGeneration": 1, "phase": "Failed"}, 1, "Degraded", "Failed"),
    (
        "failure outranks suspension",
        {
            "observedGeneration": 1,
            "conditions": [
                cond("Suspended", "True", "Suspended"),
                cond("Failed", "True", "ValidationFailed"),
            ],
        },
        1,
        "Degraded",
        "ValidationFailed",
    ),
    (
        "suspended",
        {
            "observedGeneration": 1,
            "phase": "Suspended",
            "conditions": [cond("Suspended", "True", "SuspendedBySpec", "spec.suspend is true")],
        },
        1,
        "Suspended",
        "SuspendedBySpec: spec.suspend is true",
    ),
    (
        "complete",
        {
            "observedGeneration": 1,
            "phase": "Succeeded",
            "conditions": [cond("Complete", "True", "Succeeded", "2000 records")],
        },
        1,
        "Healthy",
        "Succeeded: 2000 records",
    ),
    (
        "bank ready",
        {
            "observedGeneration": 2,
            "phase": "Ready",
            "conditions": [
                cond("Complete", "True", "Succeeded"),
                cond("Ready", "True", "BankReady", "6 levels"),
            ],
        },
        2,
        "Healthy",
        "BankReady: 6 levels",
    ),
    ("succeeded phase only", {"observedGeneration": 1, "phase": "Succeeded"}, 1, "Healthy", "Succeeded"),
    (
        "waiting for inputs",
        {"observedGeneration": 1, "phase": "WaitingForInputs", "conditions": [WAITING]},
        1,
        "Progressing",
        "WaitingForInput: GradingRun pool is Running",
    ),
    (
        "queued by Kueue",
        {
            "observedGeneration": 1,
            "phase": "Queued",
            "conditions": [
                cond("InputsReady", "True", "InputsReady"),
                cond("Admitted", "False", "Queued", "workload pending in ClusterQueue gpu"),
            ],
        },
        1,
        "Progressing",
        "Queued: workload pending in ClusterQueue gpu",
    ),
    (
        "running with progress",
        {
            "observedGeneration": 1,
            "phase": "Running",
            "conditions": [cond("Running", "True", "JobRunning"), cond("Failed", "False", "NoFailure")],
            "progress": {"done": 424, "total": 1000, "percent": 42.4},
        },
        1,
        "Progressing",
        "Running: 42% (424/1000)",
    ),
    (
        "running, total unknown",
        {"observedGeneration": 1, "phase": "Running", "progress": {"done": 0, "percent": 0}},
        1,
        "Progressing",
        "Running: 0%",
    ),
    ("running, no progress yet", {"observedGeneration": 1, "phase": "Running"}, 1, "Progressing", "Running"),
    ("pending", {"observedGeneration": 1, "phase": "Pending", "conditions": []}, 1, "Progressing", "Pending"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("case", "status", "generation", "want_status", "want_message"), CASES)
def test_health(
    kind: str,
    case: str,
    status: dict[str, Any] | None,
    generation: int,
    want_status: str,
    want_message: str,
) -> None:
    assert health(resource(kind, status, generation)) == {"status": want_status, "message": want_message}, (
        case
    )


def test_snippet_and_chart_ship_the_same_script() -> None:
    lua = HEALTH_LUA.read_text(encoding="utf-8")
    snippet = yaml.safe_load((ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml").read_text())
    assert snippet["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"},
    }
    assert snippet["data"] == {f"resource.customizations.health.adacot.dev_{k}": lua for k in KINDS}
    assert (ROOT / "charts" / "adacot" / "files" / "health.lua").read_text(encoding="utf-8") == lua


def test_example_application_targets_a_pipeline() -> None:
    app = yaml.safe_load((ROOT / "deploy" / "argocd" / "application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    spec = app["spec"]
    assert {"repoURL", "path", "targetRevision"} <= spec["source"].keys()
    assert spec["destination"]["namespace"]
    assert spec["syncPolicy"]["automated"]["prune"] is False
