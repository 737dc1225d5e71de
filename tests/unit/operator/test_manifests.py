"""build_children as data: every object checked against the Kubernetes 1.32 schemas (strict: unknown
fields are errors) with kubernetes-validate, then the fields the pod and the handlers rely on."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from adacot_operator.manifests import build_children
from adacot_operator.manifests_job import INPUT_ERROR_EXIT_CODES
from adacot_operator.resolve import InputsError, ResolvedInputs
from adacot_operator.settings import OperatorSettings
from click.testing import CliRunner
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.common import ModelSpec
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.loader import load_resources
from adacot.api.status import OutputStatus
from adacot.cli.main import main

K8S_VERSION = "1.32"
SETTINGS = OperatorSettings()
HASH = "adacot.dev/spec-hash"
INPUTS = ResolvedInputs(
    outputs={
        ("GradingRun", "qwen7b-pool"): OutputStatus(
            claim="qwen7b-pool-grade", path="ml/GradingRun/qwen7b-pool"
        ),
        ("GradingRun", "qwen7b-eval"): OutputStatus(
            claim="qwen7b-eval-grade", path="ml/GradingRun/qwen7b-eval"
        ),
        ("DifficultyBank", "qwen7b-bank"): OutputStatus(claim="shared", path="banks/qwen7b"),
        ("DistillationJob", "qwen7b-distil"): OutputStatus(claim="shared", path="cot/qwen7b"),
    },
    model=ModelSpec(path="Qwen2.5-7B-Instruct", claim_name="models"),
)


def resource(kind: str, name: str | None = None, **spec: Any) -> AnyResource:
    """A sample resource as read from the API server, with `spec` keys (wire names) overridden."""
    return RESOURCE_KINDS[kind].model_validate(sample(kind, name, **spec))  # type: ignore[return-value]


def build(
    res: AnyResource, settings: OperatorSettings = SETTINGS, inputs: ResolvedInputs = INPUTS
) -> dict[str, Any]:
    """The children by kind, each validated against the Kubernetes schemas first."""
    children = build_children(res, inputs, settings)
    for child in children:
        kubernetes_validate.validate(child, K8S_VERSION, strict=True)
    kinds = [c["kind"] for c in children]
    assert len(kinds) == len(set(kinds))
    return {c["kind"]: c for c in children}


def container(job: dict[str, Any]) -> dict[str, Any]:
    [only] = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> mount, with the claim the mount's volume names."""
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    out = {}
    for m in container(job)["volumeMounts"]:
        claim = volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
        out[m["mountPath"]] = {**m, "claim": claim}
    return out


ALL_CASES = [
    ("GradingRun", "qwen7b-pool", {}),
    ("GradingRun", "qwen7b-eval", {"queue": "gpu-queue", "activeDeadlineSeconds": 3600}),
    ("DifficultyBank", None, {"output": {"existingClaim": "shared", "subPath": "banks/qwen7b"}}),
    ("DistillationJob", None, {"scheduling": {"nodeSelector": {"pool": "a"}, "priorityClassName": "high"}}),
    ("SFTJob", None, {}),
    ("SFTJob", None, {"nodes": 3, "output": {"create": {"size": "1Ti"}, "retention": "Delete"}}),
]


@pytest.mark.parametrize(("kind", "name", "spec"), ALL_CASES)
def test_every_child_is_a_valid_kubernetes_object_with_labels_owner_and_hash(
    kind: str, name: str | None, spec: dict[str, Any]
) -> None:
    res = resource(kind, name, **spec)
    children = build(res)
    assert {"ConfigMap", "Job"} <= set(children)
    hashes = {c["metadata"]["annotations"][HASH] for c in children.values()}
    assert len(hashes) == 1 and len(hashes.pop()) == 16
    stage = kind.lower()
    for child in children.values():
        assert child["metadata"]["name"].startswith(res.metadata.name + "-")
        assert child["metadata"]["namespace"] == "ml"
        assert child["metadata"]["labels"] == {
            "adacot.dev/kind": stage,
            "adacot.dev/name": res.metadata.name,
            "adacot.dev/stage": stage,
            "app.kubernetes.io/managed-by": "adacot",
            **child["metadata"]["labels"],
        }
    template = children["Job"]["spec"]["template"]
    assert template["metadata"]["labels"]["adacot.dev/name"] == res.metadata.name
    assert container(children["Job"])["command"][:5] == [
        "adacot",
        "stage",
        stage,
        "--spec",
        "/etc/adacot/spec.yaml",
    ]
    owner = children["Job"]["metadata"]["ownerReferences"]
    assert owner == [
        {
            "apiVersion": "adacot.dev/v1alpha1",
            "kind": kind,
            "name": res.metadata.name,
            "uid": res.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_sharded_grading_run_is_an_indexed_job_with_env_mounts_and_no_secret_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADACOT_SECRET_HF_TOKEN", "hf_live_value_123")
    res = resource(
        "GradingRun",
        "qwen7b-pool",
        model={"path": "Qwen2.5-7B-Instruct", "claimName": "models", "token": {"name": "hf", "key": "token"}},
        env=[
            {"name": "EXTRA", "secretKeyRef": {"name": "other", "key": "k"}},
            {"name": "PLAIN", "value": "1"},
        ],
    )
    children = build(res)
    job = children["Job"]
    assert job["metadata"]["name"] == "qwen7b-pool-grade"
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert container(job)["terminationMessagePolicy"] == "FallbackToLogsOnError"
    variables = env(job)
    assert variables["ADACOT_OUTPUT_DIR"] == "/mnt/adacot/output/ml/GradingRun/qwen7b-pool"
    assert (
        variables["ADACOT_STATUS_PATH"]
        == "/apis/adacot.dev/v1alpha1/namespaces/ml/gradingruns/qwen7b-pool/status"
    )
    assert variables["ADACOT_SECRET_HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert variables["EXTRA"] == {"secretKeyRef": {"name": "other", "key": "k"}}
    assert variables["PLAIN"] == "1"
    assert "hf_live_value_123" not in json.dumps(list(children.values()))
    found = mounts(job)
    assert found["/mnt/adacot/output"]["claim"] == "qwen7b-pool-grade"
    assert not found["/mnt/adacot/output"].get("readOnly")
    assert found["/mnt/adacot/claims/models"] == {
        **found["/mnt/adacot/claims/models"],
        "claim": "models",
        "readOnly": True,
    }
    assert found["/mnt/adacot/claims/datasets"]["claim"] == "datasets"
    assert found["/etc/adacot"]["readOnly"] is True
    assert children["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_config_map_holds_the_resolved_spec_the_stage_loads(tmp_path: Path) -> None:
    job = resource("DistillationJob")
    children = build(job)
    text = children["ConfigMap"]["data"]["spec.yaml"]
    (tmp_path / "spec.yaml").write_text(text)
    [loaded] = load_resources(tmp_path / "spec.yaml")
    assert isinstance(loaded, DistillationJob) and isinstance(job, DistillationJob)
    assert loaded.spec.decontamination is not None
    assert loaded.spec.decontamination.benchmarks[0].path == "/mnt/adacot/claims/datasets/eval/math500.jsonl"
    assert loaded.spec.decontamination.benchmarks[0].claim_name is None
    # Everything but the path-bearing block arrives unchanged.
    assert loaded.spec.model_copy(update={"decontamination": job.spec.decontamination}) == job.spec
    assert loaded.metadata.model_dump(exclude_unset=True) == {"name": "qwen7b-distil", "namespace": "ml"}
    volume = next(v for v in children["Job"]["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == children["ConfigMap"]["metadata"]["name"]


@pytest.mark.parametrize(
    ("kind", "name"), [("DifficultyBank", None), ("DistillationJob", None), ("SFTJob", None)]
)
def test_the_stage_command_line_parses_with_inputs_mounted(
    kind: str, name: str | None, tmp_path: Path
) -> None:
    """The real `adacot stage <kind>` options accept the command (input dirs exist under the root)."""
    settings = OperatorSettings(claim_mount_root=str(tmp_path))
    job = build(resource(kind, name), settings)["Job"]
    command = container(job)["command"]
    for flag, value in itertools.pairwise(command):
        if flag in ("--run", "--bank", "--eval-grading", "--dataset"):
            Path(value.split("=")[-1]).mkdir(parents=True)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(build(resource(kind, name), settings)["ConfigMap"]["data"]["spec.yaml"])
    args = [spec_file.as_posix() if a == "/etc/adacot/spec.yaml" else a for a in command[1:]]
    stage = main.commands["stage"].commands[command[2]]  # type: ignore[attr-defined]
    context = stage.make_context(command[2], args[2:])
    assert context.params["spec_path"] == spec_file


def test_a_spec_the_stage_rejects_exits_with_a_code_the_job_fails_on_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "spec.yaml"
    bad.write_text(
        "apiVersion: adacot.dev/v1alpha1\nkind: GradingRun\nmetadata: {name: x}\nspec: {parallelism: 0}\n"
    )
    result = CliRunner().invoke(
        main, ["stage", "gradingrun", "--spec", str(bad), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code in INPUT_ERROR_EXIT_CODES
    rules = build(resource("GradingRun", "qwen7b-pool"))["Job"]["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "stage", "operator": "In", "values": [result.exit_code]},
    }
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_spec_hash_is_stable_and_follows_what_the_pod_would_do() -> None:
    def digest(res: AnyResource, inputs: ResolvedInputs = INPUTS) -> str:
        return str(build(res, inputs=inputs)["Job"]["metadata"]["annotations"][HASH])

    base = digest(resource("DistillationJob"))
    assert digest(resource("DistillationJob")) == base
    moved = sample("DistillationJob")
    moved["metadata"].update(resourceVersion="99", generation=7)
    assert digest(RESOURCE_KINDS["DistillationJob"].model_validate(moved)) == base  # type: ignore[arg-type]
    assert digest(resource("DistillationJob", suspend=True)) == base
    assert digest(resource("DistillationJob", size=100)) != base
    other = dict(INPUTS.outputs)
    other[("DifficultyBank", "qwen7b-bank")] = OutputStatus(claim="shared", path="banks/v2")
    assert digest(resource("DistillationJob"), ResolvedInputs(outputs=other)) != base


def test_kueue_queue_labels_the_job_and_creates_it_suspended() -> None:
    queued = build(resource("GradingRun", "qwen7b-pool", queue="team-a"))["Job"]
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert queued["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in queued["spec"]["template"]["metadata"]["labels"]
    plain = build(resource("GradingRun", "qwen7b-pool"))["Job"]
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    assert plain["spec"]["suspend"] is False
    default = build(resource("GradingRun", "qwen7b-pool"), OperatorSettings(default_queue="shared"))["Job"]
    assert default["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "shared"
    own = build(resource("GradingRun", "qwen7b-pool", queue="mine"), OperatorSettings(default_queue="shared"))
    assert own["Job"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "mine"
    assert build(resource("GradingRun", "qwen7b-pool", suspend=True))["Job"]["spec"]["suspend"] is True


def test_multi_node_sft_gets_a_headless_service_and_torchrun_rendezvous() -> None:
    children = build(resource("SFTJob", nodes=3, masterPort=29600))
    job, service = children["Job"], children["Service"]
    name = job["metadata"]["name"]
    assert name == "qwen7b-sft-sft" == service["metadata"]["name"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        3,
        3,
    )
    pod = job["spec"]["template"]
    assert pod["spec"]["subdomain"] == name
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 29600
    variables = env(job)
    assert variables["MASTER_ADDR"] == f"{name}-0.{name}"
    assert (variables["MASTER_PORT"], variables["NNODES"]) == ("29600", "3")
    assert variables["NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert container(job)["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    single = build(resource("SFTJob"))
    assert "Service" not in single and "completionMode" not in single["Job"]["spec"]
    assert "MASTER_ADDR" not in env(single["Job"])


def test_sft_without_model_trains_the_resolved_bank_model_and_mounts_its_claim() -> None:
    children = build(resource("SFTJob"))
    document = yaml.safe_load(children["ConfigMap"]["data"]["spec.yaml"])
    assert document["spec"]["model"]["path"] == "/mnt/adacot/claims/models/Qwen2.5-7B-Instruct"
    assert mounts(children["Job"])["/mnt/adacot/claims/models"]["claim"] == "models"
    command = container(children["Job"])["command"]
    assert command[5:] == ["--dataset", "/mnt/adacot/inputs/distillationjob-qwen7b-distil"]
    dataset = mounts(children["Job"])["/mnt/adacot/inputs/distillationjob-qwen7b-distil"]
    assert (dataset["claim"], dataset["subPath"], dataset["readOnly"]) == ("shared", "cot/qwen7b", True)
    with pytest.raises(InputsError, match=r"spec\.model is unset"):
        build_children(resource("SFTJob"), ResolvedInputs(outputs=INPUTS.outputs), SETTINGS)


def test_existing_claim_means_no_volume_claim_and_the_sub_path_as_output_dir() -> None:
    children = build(
        resource("DifficultyBank", output={"existingClaim": "shared", "subPath": "banks/qwen7b"})
    )
    assert "PersistentVolumeClaim" not in children
    job = children["Job"]
    assert env(job)["ADACOT_OUTPUT_DIR"] == "/mnt/adacot/output/banks/qwen7b"
    assert mounts(job)["/mnt/adacot/output"]["claim"] == "shared"
    claims = [v for v in job["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert sorted(v["persistentVolumeClaim"]["claimName"] for v in claims) == [
        "datasets",
        "qwen7b-eval-grade",
        "qwen7b-pool-grade",
        "shared",
    ]
    assert container(job)["command"][5:] == [
        "--run",
        "qwen7b-eval=/mnt/adacot/inputs/gradingrun-qwen7b-eval",
        "--run",
        "qwen7b-pool=/mnt/adacot/inputs/gradingrun-qwen7b-pool",
    ]


def test_a_claim_used_for_output_and_input_is_one_volume_mounted_twice() -> None:
    job = build(resource("DistillationJob", output={"existingClaim": "shared", "subPath": "cot/qwen7b"}))[
        "Job"
    ]
    volumes = [v for v in job["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert [v["persistentVolumeClaim"]["claimName"] for v in volumes].count("shared") == 1
    found = mounts(job)
    assert found["/mnt/adacot/output"]["claim"] == "shared"
    bank = found["/mnt/adacot/inputs/difficultybank-qwen7b-bank"]
    assert (bank["claim"], bank["subPath"], bank["readOnly"]) == ("shared", "banks/qwen7b", True)


def test_created_volume_size_class_and_retention() -> None:
    settings = OperatorSettings(storage_size="7Gi", storage_class="fast")
    unset = build(resource("GradingRun", "qwen7b-pool", output={"create": {}}), settings)[
        "PersistentVolumeClaim"
    ]
    assert unset["spec"]["resources"]["requests"]["storage"] == "7Gi"
    assert unset["spec"]["storageClassName"] == "fast"
    assert "ownerReferences" not in unset["metadata"]  # Retain: outlives the resource
    given = {"create": {"size": "3Gi", "storageClassName": "slow"}, "retention": "Delete"}
    own = build(resource("GradingRun", "qwen7b-pool", output=given), settings)["PersistentVolumeClaim"]
    assert own["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert own["spec"]["storageClassName"] == "slow"
    assert own["metadata"]["ownerReferences"][0]["controller"] is True


def test_chart_defaults_merge_under_spec_values() -> None:
    settings = OperatorSettings.from_env(
        {
            "ADACOT_WORKER_IMAGE": "registry.local/worker:1",
            "ADACOT_DEFAULT_SCHEDULING": json.dumps(
                {
                    "nodeSelector": {"gpu": "a100", "zone": "z1"},
                    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "priorityClassName": "batch-low",
                    "affinity": {"nodeAffinity": {}},
                }
            ),
            "ADACOT_IMAGE_PULL_SECRETS": "regcred",
            "ADACOT_WORKER_EXTRA_ENV": json.dumps(
                [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "PLAIN", "value": "chart"}]
            ),
        }
    )
    res = resource(
        "DistillationJob",
        image="mine:2",
        serviceAccountName="own-sa",
        imagePullSecrets=[{"name": "own-pull"}],
        env=[{"name": "PLAIN", "value": "spec"}, {"name": "ADACOT_OUTPUT_DIR", "value": "/elsewhere"}],
        scheduling={
            "nodeSelector": {"zone": "z2"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "runtimeClassName": "nvidia",
        },
        resources={"gpus": 2, "cpu": "8", "memory": "64Gi"},
    )
    job = build(res, settings)["Job"]
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100", "zone": "z2"}
    assert [t["key"] for t in pod["tolerations"]] == ["gpu", "spot"]
    assert (pod["priorityClassName"], pod["runtimeClassName"]) == ("batch-low", "nvidia")
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "own-pull"}]
    assert (container(job)["image"], pod["serviceAccountName"]) == ("mine:2", "own-sa")
    assert env(job)["PLAIN"] == "spec" and env(job)["HF_HUB_OFFLINE"] == "1"
    assert env(job)["ADACOT_OUTPUT_DIR"] == "/mnt/adacot/output/ml/DistillationJob/qwen7b-distil"
    assert len(container(job)["env"]) == len(env(job))  # no name twice
    limits = container(job)["resources"]["limits"]
    assert (
        limits
        == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
        == container(job)["resources"]["requests"]
    )
    plain = build(resource("DistillationJob"), settings.model_copy(update={"prefix": "ml.example.com"}))[
        "Job"
    ]
    assert "ml.example.com/spec-hash" in plain["metadata"]["annotations"]
    assert container(plain)["image"] == "registry.local/worker:1"
    assert plain["spec"]["template"]["spec"]["serviceAccountName"] == "adacot-worker"
    assert plain["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "a100", "zone": "z1"}


def test_empty_chart_values_are_left_out_of_the_pod() -> None:
    blank = OperatorSettings.from_env(
        {"ADACOT_DEFAULT_SCHEDULING": '{"priorityClassName": "", "affinity": {}}'}
    )
    pod = build(resource("GradingRun", "qwen7b-pool"), blank)["Job"]["spec"]["template"]["spec"]
    assert not {"priorityClassName", "affinity", "nodeSelector", "tolerations", "imagePullSecrets"} & set(pod)


def test_job_policy_from_the_spec() -> None:
    job = build(resource("GradingRun", "qwen7b-pool", backoffLimit=7, activeDeadlineSeconds=600))["Job"]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (7, 600)
    assert "activeDeadlineSeconds" not in build(resource("GradingRun", "qwen7b-pool"))["Job"]["spec"]


def test_missing_input_output_or_uid_is_a_clear_error() -> None:
    with pytest.raises(InputsError, match=r"input DifficultyBank/qwen7b-bank has no status\.output"):
        build_children(resource("DistillationJob"), ResolvedInputs(), SETTINGS)
    body = sample("GradingRun", "qwen7b-pool")
    del body["metadata"]["uid"]
    with pytest.raises(ValueError, match=r"metadata\.uid is unset"):
        build_children(GradingRun.model_validate(body), INPUTS, SETTINGS)
