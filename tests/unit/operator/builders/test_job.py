"""adacot_operator.builders.job: the stage's Job and pod template as data (Indexed sharding, env and
secrets, failure policy, Kueue suspension, the chart's defaults under the spec, Job policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adacot_operator.builders.job import INPUT_ERROR_EXIT_CODES
from adacot_operator.settings import OperatorSettings
from builder_cases import build, container, env, mounts, resource
from click.testing import CliRunner

from adacot.cli.main import main


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
    assert variables["ADACOT_PROGRESS_PORT"] == "8470"
    assert variables["ADACOT_POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
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


def test_a_spec_the_stage_rejects_exits_with_a_code_the_job_fails_on_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "spec.yaml"
    bad.write_text(
        "apiVersion: adacot.dev/v1alpha1\nkind: GradingRun\nmetadata: {name: x}\nspec: {shards: 0}\n"
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


def test_kueue_queue_labels_the_job_and_creates_it_suspended() -> None:
    queued = build(resource("GradingRun", "qwen7b-pool", queue_name="team-a"))["Job"]
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert queued["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in queued["spec"]["template"]["metadata"]["labels"]
    plain = build(resource("GradingRun", "qwen7b-pool"))["Job"]
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    assert plain["spec"]["suspend"] is False
    default = build(resource("GradingRun", "qwen7b-pool"), OperatorSettings(default_queue="shared"))["Job"]
    assert default["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "shared"
    own = build(
        resource("GradingRun", "qwen7b-pool", queue_name="mine"), OperatorSettings(default_queue="shared")
    )
    assert own["Job"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "mine"
    assert build(resource("GradingRun", "qwen7b-pool", suspend=True))["Job"]["spec"]["suspend"] is True


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
            # spec.image and spec.serviceAccountName below are the admin's to allow (adacot_operator.policy)
            "ADACOT_POD_POLICY": json.dumps(
                {"allowedImages": ["mine:*"], "allowedServiceAccounts": ["own-*"]}
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


def test_a_multi_node_job_fails_on_its_first_failed_pod_so_the_operator_restarts_the_gang() -> None:
    """A pod of a gang recreated alone would hang in torchrun's rendezvous: no retries inside the Job,
    no Ignore rule for disruptions; spec.backoffLimit is the operator's gang restart budget instead."""
    gang = build(resource("SFTJob", nodes=2, backoffLimit=5))["Job"]["spec"]
    assert gang["backoffLimit"] == 0
    assert [r["action"] for r in gang["podFailurePolicy"]["rules"]] == ["FailJob"]
    single = build(resource("SFTJob", nodes=1, backoffLimit=5))["Job"]["spec"]
    assert single["backoffLimit"] == 5
    assert [r["action"] for r in single["podFailurePolicy"]["rules"]] == ["FailJob", "Ignore"]


@pytest.mark.parametrize(("ttl", "expected"), [(None, None), (0, 0), (600, 600)])
def test_finished_jobs_expire_after_the_settings_ttl(ttl: int | None, expected: int | None) -> None:
    settings = OperatorSettings(job_ttl_seconds_after_finished=ttl)
    spec = build(resource("GradingRun", "qwen7b-pool"), settings=settings)["Job"]["spec"]
    assert spec.get("ttlSecondsAfterFinished") == expected
    assert build(resource("SFTJob"))["Job"]["spec"]["ttlSecondsAfterFinished"] == 86400  # the default
