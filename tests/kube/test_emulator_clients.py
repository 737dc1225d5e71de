"""The emulator with kopf, server-side apply, server dry runs, `kubectl get --watch` and the API
server's own checks of a CRD (CEL rules that do not compile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from .fixtures import CRDS, GROUP, VERSION, KubeApi, Kubectl, apply_run, sample

OPERATOR = """
import kopf

@kopf.on.create("adacot.dev", "v1alpha1", "gradingruns")
def started(body, patch, **_):
    patch.status["phase"] = "Running"
    kopf.info(body, reason="Started", message="grading started")

@kopf.on.delete("adacot.dev", "v1alpha1", "gradingruns")
def cleaned(name, logger, **_):
    logger.info("cleaned up %s", name)
"""


def test_kopf_operator_reconciles_through_the_emulator(
    kube_api: KubeApi, with_crds: Kubectl, tmp_path: Path
) -> None:
    (tmp_path / "op.py").write_text(OPERATOR, encoding="utf-8")
    log = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(kube_api.kubeconfig)}
    command = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--namespace",
        "default",
        str(tmp_path / "op.py"),
    ]
    with log.open("w") as sink:
        operator = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        apply_run(with_crds)
        with_crds("wait", "--for=jsonpath={.status.phase}=Running", "gradingrun/qwen7b-pool", "--timeout=60s")
        run = kube_api.objects("gradingruns", "default")[0]
        assert any(f.startswith("kopf.zalando.org/") for f in run["metadata"]["finalizers"])
        events = kube_api.objects("events", "default")
        assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("Started", "qwen7b-pool")]
        with_crds(
            "delete", "gradingrun", "qwen7b-pool", "--timeout=60s"
        )  # returns once kopf drops its finalizer
        assert kube_api.objects("gradingruns", "default") == []
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    assert "Deletion is processed: 1 succeeded" in log.read_text()


def test_server_side_apply_dry_run_and_get_watch(kube_api: KubeApi, kubectl: Kubectl) -> None:
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    )
    assert (
        kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout.strip()
        == "configmap/ssa serverside-applied"
    )
    changed = manifest.replace('"1"', '"2"')
    kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=changed)
    assert kube_api.objects("configmaps", "default")[0]["data"] == {"a": "1"}  # the dry run stored nothing
    watched = kubectl("get", "configmaps", "--watch", "--request-timeout=2s").stdout.split()
    assert watched[:3] == ["NAME", "DATA", "AGE"]
    assert "ssa" in watched


def test_crd_whose_rule_reads_an_undeclared_field_is_rejected(kubectl: Kubectl) -> None:
    crd = yaml.safe_load((CRDS / "adacot.dev_gradingruns.yaml").read_text(encoding="utf-8"))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["sampling"]["properties"]["false"] = spec["properties"]["sampling"]["properties"].pop(
        "samplesPerQuestion"
    )
    done = kubectl("apply", "-f", "-", input=json.dumps(crd), check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(
        'The CustomResourceDefinition "gradingruns.adacot.dev" is invalid: spec.versions[0]'
        ".schema.openAPIV3Schema.properties[spec].x-kubernetes-validations["
    )
    assert (
        "compilation failed: ERROR: <input>:1:" in done.stderr
        and "undefined field 'samplesPerQuestion'" in done.stderr
    )
    assert kubectl("get", "crds", "-o", "name").stdout == ""


def test_kubectl_discovers_through_aggregated_discovery(kube_api: KubeApi, kubectl: Kubectl) -> None:
    kubectl("get", "configmaps")
    discovery = [r["path"] for r in kube_api.requests() if r["verb"] is None]
    assert "/api" in discovery and "/apis" in discovery
    assert not [p for p in discovery if p.startswith(("/apis/", "/api/"))]  # no per-group APIResourceList
    legacy = httpx.get(f"{kube_api.url}/apis/batch/v1", timeout=10).json()  # what the python client reads
    assert legacy["kind"] == "APIResourceList" and [r["name"] for r in legacy["resources"]] == [
        "jobs",
        "jobs/status",
    ]


def test_transition_rule_pruning_and_defaulting_through_http(kube_api: KubeApi, with_crds: Kubectl) -> None:
    job = sample("DistillationJob")
    job["spec"]["unknownKnob"] = 1  # default fieldValidation (Warn): pruned, with a warning header
    created = httpx.post(
        f"{kube_api.url}/apis/{GROUP}/{VERSION}/namespaces/default/distillationjobs", json=job
    )
    assert created.status_code == 201, created.text
    assert created.headers["Warning"] == '299 - "unknown field \\"spec.unknownKnob\\""'
    assert "unknownKnob" not in created.json()["spec"] and created.json()["spec"]["suspend"] is False
    name = job["metadata"]["name"]
    changed = with_crds(
        "patch",
        "distillationjob",
        name,
        "--type=merge",
        "-p",
        '{"spec": {"distribution": {"prior": {"weights": [3, 2, 1, 0.5, 0.1]}}}}',
        check=False,
    )
    assert changed.returncode == 1
    assert changed.stderr.strip() == (
        f'The DistillationJob "{name}" is invalid: spec.distribution: Invalid value: '
        '"object": distribution is immutable'
    )
