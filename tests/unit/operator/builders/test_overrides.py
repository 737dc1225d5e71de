"""adacot_operator.builders.overrides: spec.podTemplate merged onto the stage's pod (labels, annotations,
volumes and mounts, env, security contexts, placement), operator-owned fields winning, every conflict
refused naming the field; the merged pod still passes the restricted profile; /dev/shm in memory."""

from __future__ import annotations

from typing import Any

import pytest
from adacot_operator.policy import Refused
from adacot_operator.settings import OperatorSettings, PodPolicy
from builder_cases import build, container, env, mounts, resource
from pod_security import restricted_violations

from adacot.api import RESOURCE_KINDS

ALLOWED = {
    "metadata": {"labels": {"team": "ml"}, "annotations": {"example.com/owner": "ml-team"}},
    "spec": {
        "volumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "volumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
        "env": [{"name": "SSL_CERT_DIR", "value": "/etc/ssl/corp"}],
        "securityContext": {"fsGroup": 2000, "supplementalGroups": [3000]},
        "containerSecurityContext": {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["NET_RAW"]}},
        "imagePullSecrets": [{"name": "corp-pull"}],
        "schedulerName": "volcano",
        "priorityClassName": "research",
        "tolerations": [{"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "ml"},
        "affinity": {"nodeAffinity": {}},
    },
}


def pod_of(children: dict[str, Any]) -> dict[str, Any]:
    return dict(children["Job"]["spec"]["template"])


@pytest.mark.parametrize("kind", sorted(RESOURCE_KINDS))
def test_allowed_overrides_land_on_the_pod_of_every_kind(kind: str) -> None:
    job = build(resource(kind, podTemplate=ALLOWED))["Job"]
    template = job["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["labels"]["adacot.dev/kind"] == kind.lower()  # the operator's kept
    assert template["metadata"]["annotations"]["example.com/owner"] == "ml-team"
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    assert mounts(job)["/etc/ssl/corp"]["readOnly"] is True
    assert mounts(job)["/dev/shm"]["name"] == "shm"  # the operator's mounts stay
    assert env(job)["SSL_CERT_DIR"] == "/etc/ssl/corp" and "ADACOT_OUTPUT_DIR" in env(job)
    assert pod["schedulerName"] == "volcano" and pod["priorityClassName"] == "research"
    assert pod["nodeSelector"]["pool"] == "ml" and pod["affinity"] == {"nodeAffinity": {}}
    assert {"name": "corp-pull"} in pod["imagePullSecrets"]
    assert any(t.get("key") == "team" for t in pod["tolerations"])
    assert pod["securityContext"]["fsGroup"] == 2000 and pod["securityContext"]["runAsNonRoot"] is True
    box = container(job)["securityContext"]
    assert box["capabilities"] == {"drop": ["ALL", "NET_RAW"]} and box["allowPrivilegeEscalation"] is False
    assert restricted_violations(pod, template["metadata"]["annotations"]) == []


def test_no_pod_template_builds_the_same_job_as_before() -> None:
    plain = build(resource("GradingRun", "qwen7b-pool"))["Job"]
    empty = build(resource("GradingRun", "qwen7b-pool", podTemplate={}))["Job"]
    assert plain["spec"]["template"]["spec"] == empty["spec"]["template"]["spec"]


def test_shm_is_an_in_memory_volume_sized_for_torch_by_default() -> None:
    job = build(resource("SFTJob"))["Job"]
    shm = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert mounts(job)["/dev/shm"]["name"] == "shm"


@pytest.mark.parametrize(
    ("template", "field"),
    [
        (
            {"metadata": {"labels": {"adacot.dev/kind": "x"}}},
            "spec.podTemplate.metadata.labels[adacot.dev/kind]",
        ),
        ({"metadata": {"labels": {"adacot.dev/anything": "x"}}}, "metadata.labels[adacot.dev/anything]"),
        (
            {"metadata": {"labels": {"app.kubernetes.io/managed-by": "me"}}},
            "metadata.labels[app.kubernetes.io/managed-by]",
        ),
        (
            {"metadata": {"annotations": {"adacot.dev/spec-hash": "0"}}},
            "metadata.annotations[adacot.dev/spec-hash]",
        ),
        ({"spec": {"volumes": [{"name": "shm", "emptyDir": {}}]}}, "spec.podTemplate.spec.volumes[0].name"),
        (
            {
                "spec": {
                    "volumes": [{"name": "a", "emptyDir": {}}],
                    "volumeMounts": [{"name": "a", "mountPath": "/tmp"}],
                }
            },
            "spec.podTemplate.spec.volumeMounts[0].mountPath",
        ),
        (
            {
                "spec": {
                    "volumes": [{"name": "a", "emptyDir": {}}],
                    "volumeMounts": [{"name": "a", "mountPath": "/mnt/adacot/output/x"}],
                }
            },
            "spec.podTemplate.spec.volumeMounts[0].mountPath",
        ),
        (
            {
                "spec": {
                    "volumes": [{"name": "a", "emptyDir": {}}],
                    "volumeMounts": [{"name": "a", "mountPath": "/etc/adacot"}],
                }
            },
            "volumeMounts[0].mountPath",
        ),
        (
            {"spec": {"env": [{"name": "ADACOT_OUTPUT_DIR", "value": "/x"}]}},
            "spec.podTemplate.spec.env[0].name",
        ),
        ({"spec": {"env": [{"name": "HOME", "value": "/root"}]}}, "spec.podTemplate.spec.env[0].name"),
    ],
)
def test_a_conflict_with_an_operator_owned_field_is_refused_naming_it(
    template: dict[str, Any], field: str
) -> None:
    with pytest.raises(Refused) as refused:
        build(resource("GradingRun", "qwen7b-pool", podTemplate=template))
    assert field in str(refused.value)


def test_template_env_replaces_the_settings_extra_env_and_agrees_with_spec_env() -> None:
    settings = OperatorSettings.from_env(
        {"ADACOT_WORKER_EXTRA_ENV": '[{"name": "HTTPS_PROXY", "value": "a"}]'}
    )
    res = resource(
        "GradingRun",
        "qwen7b-pool",
        env=[{"name": "SAME", "value": "1"}],
        podTemplate={
            "spec": {"env": [{"name": "HTTPS_PROXY", "value": "b"}, {"name": "SAME", "value": "1"}]}
        },
    )
    job = build(res, settings)["Job"]
    assert env(job)["HTTPS_PROXY"] == "b" and env(job)["SAME"] == "1"
    assert [e["name"] for e in container(job)["env"]].count("SAME") == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"serviceAccountName": "a", "podTemplate": {"spec": {"serviceAccountName": "b"}}},
            "spec.serviceAccountName",
        ),
        (
            {
                "env": [{"name": "X", "value": "1"}],
                "podTemplate": {"spec": {"env": [{"name": "X", "value": "2"}]}},
            },
            "spec.env[X]",
        ),
        (
            {
                "scheduling": {"nodeSelector": {"zone": "a"}},
                "podTemplate": {"spec": {"nodeSelector": {"zone": "b"}}},
            },
            "spec.scheduling.nodeSelector[zone]",
        ),
        (
            {"scheduling": {"priorityClassName": "a"}, "podTemplate": {"spec": {"priorityClassName": "b"}}},
            "spec.scheduling.priorityClassName",
        ),
        (
            {"podTemplate": {"spec": {"volumeMounts": [{"name": "nowhere", "mountPath": "/x"}]}}},
            "volumeMounts[0].name",
        ),
        ({"podTemplate": {"spec": {"volumes": [{"configMap": {"name": "x"}}]}}}, "volumes[0].name"),
    ],
)
def test_shorthand_and_template_disagreeing_is_a_spec_error(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resource("GradingRun", "qwen7b-pool", **spec)


def test_allowed_root_and_privilege_are_applied_consistently() -> None:
    settings = OperatorSettings(
        pod_policy=PodPolicy(
            allow_privileged=True,
            allow_run_as_root=True,
            allow_host_namespaces=True,
            allow_host_path=True,
            allowed_capabilities=["IPC_LOCK"],
        )
    )
    template = {
        "spec": {
            "hostNetwork": True,
            "volumes": [{"name": "dev", "hostPath": {"path": "/dev/infiniband"}}],
            "volumeMounts": [{"name": "dev", "mountPath": "/dev/infiniband"}],
            "securityContext": {"runAsUser": 0},
            "containerSecurityContext": {"privileged": True, "capabilities": {"add": ["IPC_LOCK"]}},
        }
    }
    job = build(resource("SFTJob", podTemplate=template), settings)["Job"]
    pod = job["spec"]["template"]["spec"]
    box = container(job)["securityContext"]
    assert pod["hostNetwork"] is True and pod["securityContext"]["runAsUser"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is False and box["runAsNonRoot"] is False
    assert box["privileged"] is True and box["allowPrivilegeEscalation"] is True
    assert box["capabilities"] == {"add": ["IPC_LOCK"], "drop": ["ALL"]}
