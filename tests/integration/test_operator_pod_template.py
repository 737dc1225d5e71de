"""spec.podTemplate through the real operator (`kopf run`) on the API emulator, driven with kubectl: an
override the operator's pod policy refuses (a hostPath volume) ends the GradingRun Failed, reason
ValidationFailed, naming the field and the setting that would allow it, and no Job is created; allowed
overrides (a label, an annotation, a configMap volume and its mount, a scheduler) land on the Job's pod
template next to what the operator owns. The merge and policy rules themselves are unit-tested
(tests/unit/operator/test_policy.py, builders/test_overrides.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from adacot_operator.names import child_name
from k8s_objects import sample
from test_operator_smoke import Operator, cluster, get, until  # noqa: F401  (cluster: a fixture)

pytestmark = pytest.mark.integration
NAME = "qwen7b-pool"
JOB = child_name("GradingRun", NAME)


def apply_run(kubectl: Any, pod_template: dict[str, Any]) -> None:
    run = sample("GradingRun", NAME, podTemplate=pod_template)
    run["metadata"] = {"name": NAME, "namespace": "default"}
    kubectl("apply", "-f", "-", input=json.dumps(run))  # JSON: YAML 1.1 would read some keys as booleans


def test_a_host_path_override_is_refused_naming_the_field_and_the_setting(
    cluster: tuple[Any, Operator],  # noqa: F811
) -> None:
    kubectl, operator = cluster
    apply_run(
        kubectl,
        {
            "spec": {
                "volumes": [{"name": "node-root", "hostPath": {"path": "/"}}],
                "volumeMounts": [{"name": "node-root", "mountPath": "/host"}],
            }
        },
    )

    def failed() -> dict[str, Any] | None:
        status = get(kubectl, "gradingrun", NAME)["status"]
        return status if status["phase"] == "Failed" else None

    status = until("phase Failed", failed, operator)
    condition = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert condition["status"] == "True" and condition["reason"] == "ValidationFailed"
    assert "spec.podTemplate.spec.volumes[0].hostPath" in condition["message"]
    assert "podPolicy.allowHostPath" in condition["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert kubectl("get", "job", JOB, check=False).returncode != 0
    events = until(
        "a Warning event",
        lambda: [
            e
            for e in get(kubectl, "events", "--field-selector", f"involvedObject.name={NAME}")["items"]
            if e["reason"] == "ValidationFailed"
        ],
        operator,
    )
    assert "volumes[0].hostPath" in events[0]["message"]


def test_allowed_overrides_reach_the_jobs_pod_template(cluster: tuple[Any, Operator]) -> None:  # noqa: F811
    kubectl, operator = cluster
    apply_run(
        kubectl,
        {
            "metadata": {"labels": {"team": "ml"}, "annotations": {"example.com/owner": "ml-team"}},
            "spec": {
                "volumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
                "volumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
                "schedulerName": "volcano",
            },
        },
    )
    job = until("the Job", lambda: get(kubectl, "job", JOB), operator)
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "adacot"
    assert template["metadata"]["annotations"]["example.com/owner"] == "ml-team"
    pod = template["spec"]
    assert pod["schedulerName"] == "volcano"
    assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    [stage] = pod["containers"]
    assert {"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in stage["volumeMounts"]
    assert stage["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    status = get(kubectl, "gradingrun", NAME)["status"]
    assert status["phase"] != "Failed"
