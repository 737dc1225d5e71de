"""adacot_operator.policy as data: every way a spec could get more than the restricted profile through
the operator (image, ServiceAccount, host namespaces, hostPath and other volume types, root,
capabilities, privilege) is refused by default, naming the field and the podPolicy setting that would
allow it; the setting allows exactly that; reconcile.plan turns a refusal into Failed/ValidationFailed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from adacot_operator.policy import Refused, check, image_directory, refusals
from adacot_operator.reconcile import plan
from adacot_operator.settings import DEFAULT_WORKER_IMAGE, OperatorSettings, PodPolicy
from adacot_operator.status import Children
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource

T = "spec.podTemplate.spec"
CONTAINER = f"{T}.containerSecurityContext"

#: (spec keys, the refused field, the podPolicy key that allows it, its value).
CASES: list[tuple[dict[str, Any], str, str, Any]] = [
    ({"image": "evil.example/miner:1"}, "spec.image", "allowedImages", ["evil.example/*"]),
    ({"serviceAccountName": "admin"}, "spec.serviceAccountName", "allowedServiceAccounts", ["admin"]),
    ({"podTemplate": {"spec": {"serviceAccountName": "ci-*x"}}}, f"{T}.serviceAccountName",
     "allowedServiceAccounts", ["ci-*"]),
    ({"podTemplate": {"spec": {"hostNetwork": True}}}, f"{T}.hostNetwork", "allowHostNamespaces", True),
    ({"podTemplate": {"spec": {"hostPID": True}}}, f"{T}.hostPID", "allowHostNamespaces", True),
    ({"podTemplate": {"spec": {"hostIPC": True}}}, f"{T}.hostIPC", "allowHostNamespaces", True),
    ({"podTemplate": {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}},
     f"{T}.volumes[0].hostPath", "allowHostPath", True),
    ({"podTemplate": {"spec": {"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}}},
     f"{T}.volumes[0].nfs", "allowedVolumeTypes", ["nfs"]),
    ({"podTemplate": {"spec": {"volumes": [{"name": "t", "projected": {"sources": [
        {"configMap": {"name": "c"}}, {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}]}}},
     f"{T}.volumes[0].projected.sources[1].serviceAccountToken", "allowServiceAccountToken", True),
    ({"podTemplate": {"spec": {"securityContext": {"runAsUser": 0}}}}, f"{T}.securityContext.runAsUser",
     "allowRunAsRoot", True),
    ({"podTemplate": {"spec": {"securityContext": {"runAsNonRoot": False}}}},
     f"{T}.securityContext.runAsNonRoot", "allowRunAsRoot", True),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"runAsUser": 0}}}}, f"{CONTAINER}.runAsUser",
     "allowRunAsRoot", True),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"privileged": True}}}}, f"{CONTAINER}.privileged",
     "allowPrivileged", True),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"allowPrivilegeEscalation": True}}}},
     f"{CONTAINER}.allowPrivilegeEscalation", "allowPrivileged", True),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}}},
     f"{CONTAINER}.capabilities.add[0]", "allowedCapabilities", ["SYS_ADMIN"]),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"capabilities": {"add": ["CAP_NET_ADMIN"]}}}}},
     f"{CONTAINER}.capabilities.add[0]", "allowedCapabilities", ["*"]),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"procMount": "Unmasked"}}}},
     f"{CONTAINER}.procMount", "allowPrivileged", True),
    ({"podTemplate": {"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}},
     f"{T}.securityContext.seccompProfile.type", "allowPrivileged", True),
    ({"podTemplate": {"spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}}},
     f"{T}.securityContext.sysctls[0]", "allowPrivileged", True),
    ({"podTemplate": {"spec": {"containerSecurityContext": {"seLinuxOptions": {"type": "spc_t"}}}}},
     f"{CONTAINER}.seLinuxOptions", "allowPrivileged", True),
]  # fmt: skip


def make(**spec: Any) -> AnyResource:
    return RESOURCE_KINDS["GradingRun"].model_validate(sample("GradingRun", "qwen7b-pool", **spec))  # type: ignore[return-value]


def allowing(key: str, value: Any) -> OperatorSettings:
    return OperatorSettings(pod_policy=PodPolicy.model_validate({key: value}))


@pytest.mark.parametrize(("spec", "field", "setting", "value"), CASES)
def test_refused_by_default_naming_field_and_setting(
    spec: dict[str, Any], field: str, setting: str, value: Any
) -> None:
    res = make(**spec)
    with pytest.raises(Refused) as refused:
        check(res, OperatorSettings())
    message = str(refused.value)
    assert message.startswith(f"{field}: ")
    assert f"podPolicy.{setting}" in message and "ADACOT_POD_POLICY" in message
    assert refused.value.setting == setting


@pytest.mark.parametrize(("spec", "field", "setting", "value"), CASES)
def test_the_setting_allows_exactly_that(spec: dict[str, Any], field: str, setting: str, value: Any) -> None:
    assert refusals(make(**spec), allowing(setting, value)) == []


def test_the_chart_variable_carries_the_policy() -> None:
    settings = OperatorSettings.from_env(
        {"ADACOT_POD_POLICY": '{"allowHostPath": true, "allowedImages": ["r/*"]}'}
    )
    assert settings.pod_policy == PodPolicy(allow_host_path=True, allowed_images=["r/*"])


def test_what_the_defaults_and_the_settings_choose_is_never_refused() -> None:
    assert refusals(make(), OperatorSettings()) == []
    assert (
        refusals(make(image=DEFAULT_WORKER_IMAGE.replace("worker:", "worker-cpu:")), OperatorSettings()) == []
    )
    assert refusals(make(serviceAccountName="adacot-worker"), OperatorSettings()) == []
    mine = OperatorSettings(worker_image="registry.local/team/worker:2", worker_service_account="runner")
    assert refusals(make(image="registry.local/team/worker:3", serviceAccountName="runner"), mine) == []
    assert [r.field for r in refusals(make(image="ghcr.io/adacot/worker:1"), mine)] == ["spec.image"]
    safe = {
        "securityContext": {
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}],
        },
        "containerSecurityContext": {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False},
        "volumes": [
            {"name": "c", "configMap": {"name": "c"}},
            {"name": "p", "persistentVolumeClaim": {"claimName": "p"}},
        ],
    }
    assert refusals(make(podTemplate={"spec": safe}), OperatorSettings()) == []


def test_every_refusal_is_reported_at_once() -> None:
    res = make(image="x/y:1", podTemplate={"spec": {"hostPID": True}})
    with pytest.raises(Refused) as refused:
        check(res, OperatorSettings())
    assert "spec.image" in str(refused.value) and f"{T}.hostPID" in str(refused.value)


@pytest.mark.parametrize(
    ("image", "directory"),
    [("ghcr.io/adacot/worker:0.1.0", "ghcr.io/adacot"), ("localhost:5000/w", "localhost:5000"),
     ("r.io/a/b/w@sha256:00", "r.io/a/b"), ("worker:1", "worker")],
)  # fmt: skip
def test_image_directory(image: str, directory: str) -> None:
    assert image_directory(image) == directory


def test_plan_ends_a_refused_resource_failed_validation_failed() -> None:
    body = sample("GradingRun", "qwen7b-pool", podTemplate={"spec": {"hostNetwork": True}})
    body["metadata"]["generation"] = 1

    def build() -> list[dict[str, Any]]:
        check(RESOURCE_KINDS["GradingRun"].model_validate(body), OperatorSettings())
        return []

    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = plan(body, Children(), {}, now, build)
    assert result.status["phase"] == "Failed" and result.create == []
    conditions = {c["type"]: c for c in result.status["conditions"]}
    assert conditions["Failed"]["reason"] == "ValidationFailed"
    assert "spec.podTemplate.spec.hostNetwork" in conditions["Failed"]["message"]
    assert "podPolicy.allowHostNamespaces" in conditions["Failed"]["message"]
    assert conditions["Stalled"]["status"] == "True" and conditions["Ready"]["status"] == "False"
    assert any(e.type == "Warning" and e.reason == "ValidationFailed" for e in result.events)
    again = plan({**body, "status": result.status}, Children(), {}, now, build)
    assert again.patch == {} and again.status["phase"] == "Failed"  # stable: nothing to write
