"""adacot_operator.builders.security as data: every pod template the operator builds (all four kinds,
sharded and multi-node) passes the Pod Security "restricted" profile (tests/pod_security.py), mounts no
service-account token and writes only to its volumes; the checker itself flags a violating pod; pods
that run untrusted code are labelled (egress none when every backend is local) and get the operator's
runtimeClassName."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from adacot_operator.builders.security import EGRESS_LABEL, UNTRUSTED_LABEL
from adacot_operator.settings import OperatorSettings
from builder_cases import build, container, resource
from pod_security import restricted_violations
from test_children import ALL_CASES

CODE_QUESTIONS = {"path": "pools/code.jsonl", "claimName": "datasets", "task": "code"}


def template(kind: str, name: str | None = None, settings: OperatorSettings | None = None,
             **spec: Any) -> dict[str, Any]:  # fmt: skip
    job = build(resource(kind, name, **spec), **({"settings": settings} if settings else {}))["Job"]
    return dict(job["spec"]["template"])


@pytest.mark.parametrize(("kind", "name", "spec"), ALL_CASES)
def test_every_stage_pod_passes_the_restricted_profile_without_a_token(
    kind: str, name: str | None, spec: dict[str, Any]
) -> None:
    pod = template(kind, name, **spec)
    assert restricted_violations(pod["spec"], pod["metadata"].get("annotations")) == []
    assert pod["spec"]["automountServiceAccountToken"] is False
    ctx = container({"spec": {"template": pod}})["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    writable = {m["mountPath"] for m in container({"spec": {"template": pod}})["volumeMounts"]
                if not m.get("readOnly")}  # fmt: skip
    assert {"/tmp", "/home/adacot", "/dev/shm", "/mnt/adacot/output"} <= writable


def test_the_checker_flags_a_violating_pod() -> None:
    pod = template("GradingRun", "qwen7b-pool")
    assert restricted_violations(pod["spec"]) == []
    cases = {
        "hostNetwork": lambda s: s.update(hostNetwork=True),
        "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
        "allowPrivilegeEscalation": lambda s: s["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "drop ALL": lambda s: s["containers"][0]["securityContext"].pop("capabilities"),
        "adds capabilities": lambda s: s["containers"][0]["securityContext"].update(
            capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}
        ),
        "runAsNonRoot must": lambda s: [
            s["securityContext"].pop("runAsNonRoot"),
            s["containers"][0]["securityContext"].pop("runAsNonRoot"),
        ],
        "runAsUser 0": lambda s: s["securityContext"].update(runAsUser=0),
        "seccompProfile must": lambda s: s["securityContext"].pop("seccompProfile"),
        "hostPort": lambda s: s["containers"][0]["ports"][0].update(hostPort=8470),
        "procMount": lambda s: s["containers"][0]["securityContext"].update(procMount="Unmasked"),
        "sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "seLinuxOptions": lambda s: s["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
    }
    for needle, spoil in cases.items():
        spec = copy.deepcopy(pod["spec"])
        spoil(spec)
        found = restricted_violations(spec)
        assert any(needle in v for v in found), (needle, found)
    annotations = {"container.apparmor.security.beta.kubernetes.io/stage": "unconfined"}
    assert restricted_violations(pod["spec"], annotations)


def test_untrusted_code_is_labelled_and_gets_the_runtime_class() -> None:
    gvisor = OperatorSettings(runtime_class_name="gvisor")
    math = template("GradingRun", "qwen7b-pool", settings=gvisor)
    assert UNTRUSTED_LABEL not in math["metadata"]["labels"] and "runtimeClassName" not in math["spec"]
    code = template("GradingRun", "qwen7b-pool", settings=gvisor, questions=CODE_QUESTIONS)
    assert code["metadata"]["labels"][UNTRUSTED_LABEL] == "true"
    assert code["metadata"]["labels"][EGRESS_LABEL] == "none"  # local model, local PRM
    assert code["spec"]["runtimeClassName"] == "gvisor"
    assert "runtimeClassName" not in template("GradingRun", "qwen7b-pool", questions=CODE_QUESTIONS)["spec"]
    own = template("GradingRun", "qwen7b-pool", settings=gvisor, questions=CODE_QUESTIONS,
                   scheduling={"runtimeClassName": "kata"})  # fmt: skip
    assert own["spec"]["runtimeClassName"] == "kata"  # the spec's choice wins
    distil = template("DistillationJob", settings=gvisor)  # its task is its bank's: treated as code
    assert distil["metadata"]["labels"][EGRESS_LABEL] == "endpoints"  # the teacher is an endpoint
    assert distil["spec"]["runtimeClassName"] == "gvisor"
    hub = template("GradingRun", "qwen7b-pool", questions=CODE_QUESTIONS, model={"hubId": "Qwen/Qwen2.5-7B"})
    assert hub["metadata"]["labels"][EGRESS_LABEL] == "endpoints"  # downloads from the hub
    sft = template("SFTJob")
    assert UNTRUSTED_LABEL not in sft["metadata"]["labels"]
