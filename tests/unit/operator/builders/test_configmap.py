"""adacot_operator.builders.configmap: the ConfigMap holds the resolved spec the stage loads (paths
absolute under the claim mounts, the SFT base model filled in)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from adacot_operator.builders.children import build_children
from adacot_operator.builders.configmap import config_map
from adacot_operator.resolve import InputsError, ResolvedInputs
from builder_cases import HASH, INPUTS, SETTINGS, build, container, mounts, resource

from adacot.api.distillation_job import DistillationJob
from adacot.api.loader import load_resources


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


def test_config_map_is_the_document_as_yaml_in_its_own_order_with_the_given_name_and_annotations() -> None:
    """The builder alone (no resolution): keys keep their order, non-ASCII text stays readable."""
    res = resource("GradingRun", "qwen7b-pool")
    document = {"kind": "GradingRun", "spec": {"note": "über", "z": 1, "a": 2}}
    made = config_map(res, "qwen7b-pool-grade", document, {HASH: "abc"})
    assert (made["apiVersion"], made["kind"]) == ("v1", "ConfigMap")
    assert made["metadata"]["name"] == "qwen7b-pool-grade"
    assert made["metadata"]["annotations"] == {HASH: "abc"}
    assert made["data"] == {"spec.yaml": "kind: GradingRun\nspec:\n  note: über\n  z: 1\n  a: 2\n"}
