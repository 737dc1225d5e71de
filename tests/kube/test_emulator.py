"""The API emulator driven by the real kubectl 1.32 and the kubernetes python client: CRD
registration, samples, printer columns, rejection messages, status subresource + `kubectl wait`,
deletion with finalizers and garbage collection, selectors, conflicts and watch streams."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .fixtures import GROUP, KUBECTL, SAMPLES, VERSION, KubeApi, Kubectl, apply_run

INVALID = sorted((SAMPLES / "invalid").glob("*.yaml"))


def as_json_stream(path: Path) -> str:
    """The documents of a YAML file as a stream of JSON documents (read by PyYAML; in JSON every key is
    quoted, so kubectl's YAML 1.1 reader, which turns a bare key `n` into "false", keeps them)."""
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return "\n".join(json.dumps(d) for d in docs)


def test_sample_files_apply_as_kubectl_reads_them(with_crds: Kubectl) -> None:
    with_crds("create", "namespace", "chain")  # distill.yaml reuses the single samples' names
    with_crds("apply", "-n", "chain", "-f", str(SAMPLES / "distill.yaml"))
    for path in sorted(set(SAMPLES.glob("*.yaml")) - {SAMPLES / "distill.yaml"}):
        with_crds("apply", "-f", str(path))


def test_crds_register_kinds_and_samples_apply(kube_api: KubeApi, with_crds: Kubectl) -> None:
    kubectl = with_crds
    names = kubectl("get", "crds", "-o", "name").stdout.split()
    assert names == [
        f"customresourcedefinition.apiextensions.k8s.io/{p}.adacot.dev"
        for p in ("difficultybanks", "distillationjobs", "gradingruns", "sftjobs")
    ]
    kubectl("wait", "--for=condition=Established", "crd/gradingruns.adacot.dev", "--timeout=10s")
    kubectl("create", "namespace", "chain")  # distill.yaml reuses the single samples' names
    kubectl("apply", "-n", "chain", "-f", "-", input=as_json_stream(SAMPLES / "distill.yaml"))
    for path in sorted(set(SAMPLES.glob("*.yaml")) - {SAMPLES / "distill.yaml"}):
        kubectl("apply", "-f", "-", input=as_json_stream(path))
    again = kubectl("apply", "-f", "-", input=as_json_stream(SAMPLES / "gradingrun.yaml")).stdout
    assert again.strip() == "gradingrun.adacot.dev/qwen7b-pool unchanged"
    assert len(kubectl("get", "adacot", "-n", "chain", "-o", "name").stdout.split()) == 5
    table = kubectl("get", "adacot").stdout
    assert "gradingrun.adacot.dev/qwen7b-pool " in table and "sftjob.adacot.dev/" in table
    runs = kubectl("get", "gradingruns").stdout.splitlines()
    assert runs[0].split() == ["NAME", "PHASE", "PROGRESS", "ACCURACY", "AGE"]
    assert runs[1].split()[0] == "qwen7b-pool" and len(runs[1].split()) == 2  # no status yet: empty cells
    listed = json.loads(kubectl("get", "gradingruns", "-o", "json").stdout)
    run = next(i for i in listed["items"] if i["metadata"]["name"] == "qwen7b-pool")
    assert run["kind"] == "GradingRun" and run["metadata"]["generation"] == 1 and run["metadata"]["uid"]
    assert run["spec"]["suspend"] is False  # defaulted from the schema
    assert (
        kubectl("get", "gr", "qwen7b-pool", "-o", "name").stdout.strip()
        == "gradingrun.adacot.dev/qwen7b-pool"
    )
    assert {o["metadata"]["name"] for o in kube_api.objects("gradingruns", "default")} >= {"qwen7b-pool"}


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_sample_is_rejected_with_the_servers_message(with_crds: Kubectl, path: Path) -> None:
    expected = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect:").strip()
    done = with_crds("apply", "-f", str(path), check=False)
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path.stem == "unknown-field":
        assert 'strict decoding error: unknown field "spec.trainng"' in done.stderr
    else:
        assert done.stderr.startswith(f'The {doc["kind"]} "{doc["metadata"]["name"]}" is invalid: ')
    assert "created" not in done.stdout


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "bad-enum-value",
            'The GradingRun "bad-method" is invalid: spec.grader.method: Unsupported value: '
            '"majorityVote": supported values: "prm", "passRate"',
        ),
        ("missing-required-field", 'The GradingRun "no-model" is invalid: spec.model: Required value'),
        (
            "out-of-range",
            'The DistillationJob "too-hot" is invalid: spec.teacher.sampling.temperature: Invalid '
            "value: 3.5: spec.teacher.sampling.temperature in body should be less than or equal to 2",
        ),
        (
            "two-one-of-choices",
            'The DistillationJob "two-teachers" is invalid: spec.teacher: Invalid value: '
            '"object": teacher: set exactly one of endpoint, server',
        ),
    ],
)
def test_rejection_reads_exactly_like_kube_apiserver(with_crds: Kubectl, path: str, message: str) -> None:
    done = with_crds("apply", "-f", str(SAMPLES / "invalid" / f"{path}.yaml"), check=False)
    assert done.stderr.strip() == message


def test_kubectl_wait_returns_after_status_patch(
    kube_api: KubeApi, with_crds: Kubectl, api: client.ApiClient
) -> None:
    apply_run(with_crds)
    waiter = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kube_api.kubeconfig),
            "wait",
            "--for=condition=Complete",
            "gradingrun/qwen7b-pool",
            "--timeout=30s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    custom: Any = client.CustomObjectsApi(api)
    condition = {
        "type": "Complete",
        "status": "True",
        "reason": "Done",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        "gradingruns",
        "qwen7b-pool",
        {"status": {"phase": "Succeeded", "conditions": [condition]}},
    )
    out, err = waiter.communicate(timeout=40)
    assert waiter.returncode == 0, err
    assert out.strip() == "gradingrun.adacot.dev/qwen7b-pool condition met"
    run = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "gradingruns", "qwen7b-pool")
    assert run["status"]["phase"] == "Succeeded" and run["metadata"]["generation"] == 1
    assert with_crds("get", "gradingrun", "qwen7b-pool", "--no-headers").stdout.split()[1] == "Succeeded"


def test_status_subresource_and_generation(with_crds: Kubectl, api: client.ApiClient) -> None:
    apply_run(with_crds)
    custom: Any = client.CustomObjectsApi(api)
    args = (GROUP, VERSION, "default", "gradingruns", "qwen7b-pool")
    custom.patch_namespaced_custom_object(
        *args, {"status": {"phase": "Failed"}}
    )  # main endpoint: status ignored
    assert "status" not in custom.get_namespaced_custom_object(*args)
    custom.patch_namespaced_custom_object_status(
        *args, {"status": {"phase": "Running"}, "spec": {"shards": 9}}
    )
    run = custom.get_namespaced_custom_object(*args)
    assert run["status"] == {"phase": "Running"} and run["spec"]["shards"] == 4  # /status: spec ignored
    assert run["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object(*args, {"spec": {"shards": 2}})
    run = custom.get_namespaced_custom_object(*args)
    assert run["metadata"]["generation"] == 2 and run["status"] == {"phase": "Running"}


def test_delete_collects_owned_configmap_and_honours_finalizers(
    kube_api: KubeApi, with_crds: Kubectl, api: client.ApiClient
) -> None:
    kubectl = with_crds
    apply_run(kubectl)
    run = json.loads(kubectl("get", "gradingrun", "qwen7b-pool", "-o", "json").stdout)
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GradingRun",
        "name": "qwen7b-pool",
        "uid": run["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"k": "v"},
        "metadata": {"name": "spec", "namespace": "default", "ownerReferences": [owner]},
    }
    kubectl("apply", "-f", "-", input=json.dumps(owned))
    kubectl("create", "configmap", "unowned")
    assert {o["metadata"]["name"] for o in kube_api.objects("configmaps", "default")} == {"spec", "unowned"}
    core: Any = client.CoreV1Api(api)
    core.patch_namespaced_config_map("unowned", "default", {"metadata": {"finalizers": ["example.com/keep"]}})

    kubectl("delete", "gradingrun", "qwen7b-pool", "--timeout=20s")
    assert kube_api.objects("gradingruns", "default") == []
    assert [o["metadata"]["name"] for o in kube_api.objects("configmaps", "default")] == ["unowned"]

    kubectl("delete", "configmap", "unowned", "--wait=false")
    held = core.read_namespaced_config_map("unowned", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("unowned", "default", {"metadata": {"finalizers": None}})
    assert kube_api.objects("configmaps", "default") == []


def test_label_and_field_selectors(with_crds: Kubectl) -> None:
    kubectl = with_crds
    for name, labels in (("a", "app=web,tier=front"), ("b", "app=web,tier=back"), ("c", "app=db")):
        kubectl("create", "configmap", name)
        kubectl("label", "configmap", name, *labels.split(","))

    def names(*selector: str) -> list[str]:
        return kubectl("get", "configmaps", *selector, "-o", "name").stdout.split()

    table = kubectl("get", "configmaps", "-l", "app=db").stdout.split()
    assert table[:3] == ["NAME", "DATA", "AGE"] and table[3:5] == ["c", "0"]
    assert names("-l", "app=web") == ["configmap/a", "configmap/b"]
    assert names("-l", "app=web,tier!=front") == ["configmap/b"]
    assert names("-l", "tier in (front,back)") == ["configmap/a", "configmap/b"]
    assert names("-l", "!tier") == ["configmap/c"]
    assert names("--field-selector", "metadata.name=c") == ["configmap/c"]
    assert names("-A", "--field-selector", "metadata.namespace=kube-system") == []


def test_stale_put_conflicts_and_errors_read_like_the_server(api: client.ApiClient) -> None:
    core: Any = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}}
    )
    name = created.metadata.name
    assert name.startswith("cfg-") and len(name) == len("cfg-") + 5
    fresh = core.read_namespaced_config_map(name, "default")
    fresh.data = {"a": "2"}
    core.replace_namespaced_config_map(name, "default", fresh)
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map(name, "default", fresh)  # still carries the old resourceVersion
    body = status_of(stale.value)
    assert stale.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    assert (
        exists.value.status == 409
        and status_of(exists.value)["message"] == f'configmaps "{name}" already exists'
    )
    with pytest.raises(ApiException) as versioned:
        core.create_namespaced_config_map("default", {"metadata": {"name": "again", "resourceVersion": "5"}})
    assert versioned.value.status == 500
    assert (
        status_of(versioned.value)["message"] == "resourceVersion should not be set on objects to be created"
    )
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404 and status_of(missing.value)["reason"] == "NotFound"
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "x"}})
    assert status_of(no_namespace.value)["message"] == 'namespaces "ghost" not found'


def test_watch_stream_through_the_python_client(api: client.ApiClient) -> None:
    core: Any = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w", "labels": {"app": "x"}}})
    core.create_namespaced_secret("default", {"metadata": {"name": "not-a-config-map"}})
    core.patch_namespaced_config_map("w", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", "default")
    replayed = [
        (e["type"], e["object"].metadata.name, (e["object"].data or {}).get("k"))
        for e in _first_events(core, start, 3)
    ]
    # the replay holds this resource's history only (the Secret created in between is not in it)
    assert replayed == [("ADDED", "w", None), ("MODIFIED", "w", "v"), ("DELETED", "w", "v")]

    live: list[tuple[str, str]] = []
    now = core.list_namespaced_config_map("default").metadata.resource_version
    reader = threading.Thread(
        target=lambda: live.extend(
            (e["type"], e["object"].metadata.name) for e in _first_events(core, now, 1)
        )
    )
    reader.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
    reader.join(timeout=30)
    assert live == [("ADDED", "later")]


def status_of(error: ApiException) -> dict[str, Any]:
    """The metav1.Status body of an API error."""
    return dict(json.loads(error.body or "{}"))


def _first_events(core: Any, since: str, count: int) -> list[dict[str, Any]]:
    stream: Any = watch.Watch()  # type: ignore[no-untyped-call]
    events = []
    for event in stream.stream(
        core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=20
    ):
        events.append(event)
        if len(events) == count:
            stream.stop()
    return events


def test_request_log_names_verb_resource_and_agent(kube_api: KubeApi, kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "logged", "--from-literal=password=hunter2")
    created = [r for r in kube_api.requests() if r["verb"] == "create"]
    assert created and created[-1]["resource"] == "configmaps" and created[-1]["namespace"] == "default"
    assert created[-1]["user_agent"].startswith("kubectl/") and created[-1]["code"] == 201
    assert "hunter2" not in kube_api.log.read_text()
