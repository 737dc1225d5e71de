"""adacot_operator.builders.volumes: the output PersistentVolumeClaim (size, class, retention) and
the pod's volumes and mounts (one volume per claim, the output read-write, inputs read-only)."""

from __future__ import annotations

from adacot_operator.settings import OperatorSettings
from builder_cases import build, container, env, mounts, resource


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
