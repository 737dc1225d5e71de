"""Input resolution: where a stage writes, which producer artifacts it mounts, the flags naming them,
and the spec its pod reads (paths rewritten under the claim mounts)."""

from __future__ import annotations

from typing import Any

import pytest
from adacot_operator.names import child_name
from adacot_operator.resolve import (
    InputsError,
    ResolvedInputs,
    input_flags,
    input_mounts,
    output_location,
    resolved_document,
)
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.common import ModelSpec
from adacot.api.status import OutputStatus

ROOT = "/mnt/adacot"


def resource(kind: str, name: str | None = None, **spec: Any) -> AnyResource:
    return RESOURCE_KINDS[kind].model_validate(sample(kind, name, **spec))  # type: ignore[return-value]


def out(claim: str, path: str) -> OutputStatus:
    return OutputStatus(claim=claim, path=path)


def test_output_location_defaults_to_the_created_claim_and_namespace_kind_name() -> None:
    assert output_location(resource("GradingRun", "qwen7b-pool")) == out(
        "qwen7b-pool-grade", "ml/GradingRun/qwen7b-pool"
    )
    shared = resource("SFTJob", output={"existingClaim": "results", "subPath": "sft/run1"})
    assert output_location(shared) == out("results", "sft/run1")


def test_a_bank_reads_its_source_runs_and_every_feeding_run_in_a_stable_order() -> None:
    bank = resource(
        "DifficultyBank", sources=[{"gradingRunRef": {"name": "zeta"}}, {"path": "/data/extra.jsonl"}]
    )
    inputs = ResolvedInputs(
        outputs={
            ("GradingRun", "beta"): out("c1", "ml/GradingRun/beta"),
            ("GradingRun", "zeta"): out("c2", "/zeta/"),
            ("GradingRun", "alpha"): out("c1", "ml/GradingRun/alpha"),
        }
    )
    mounts = input_mounts(bank, inputs, ROOT)
    assert [(m.name, m.claim, m.sub_path, m.mount_path) for m in mounts] == [
        ("zeta", "c2", "zeta", "/mnt/adacot/inputs/gradingrun-zeta"),
        ("alpha", "c1", "ml/GradingRun/alpha", "/mnt/adacot/inputs/gradingrun-alpha"),
        ("beta", "c1", "ml/GradingRun/beta", "/mnt/adacot/inputs/gradingrun-beta"),
    ]
    assert input_flags(bank, mounts) == [
        "--run", "zeta=/mnt/adacot/inputs/gradingrun-zeta",
        "--run", "alpha=/mnt/adacot/inputs/gradingrun-alpha",
        "--run", "beta=/mnt/adacot/inputs/gradingrun-beta",
    ]  # fmt: skip
    with pytest.raises(InputsError, match="input GradingRun/zeta has no status"):
        input_mounts(bank, ResolvedInputs(outputs={("GradingRun", "alpha"): out("c1", "a")}), ROOT)


def test_distillation_flags_name_the_bank_and_the_p_eval_run() -> None:
    job = resource("DistillationJob")
    inputs = ResolvedInputs(
        outputs={
            ("DifficultyBank", "qwen7b-bank"): out("b", "bank"),
            ("GradingRun", "qwen7b-eval"): out("e", "eval"),
        }
    )
    assert input_flags(job, input_mounts(job, inputs, "/r")) == [
        "--bank", "/r/inputs/difficultybank-qwen7b-bank",
        "--eval-grading", "/r/inputs/gradingrun-qwen7b-eval",
    ]  # fmt: skip
    prior = resource("DistillationJob", distribution={"prior": {"weights": [5, 4, 3, 2, 1]}})
    assert input_flags(prior, input_mounts(prior, inputs, "/r")) == [
        "--bank",
        "/r/inputs/difficultybank-qwen7b-bank",
    ]
    with pytest.raises(InputsError, match="DifficultyBank/qwen7b-bank"):
        input_mounts(job, ResolvedInputs(outputs={("DifficultyBank", "qwen7b-bank"): OutputStatus()}), "/r")


def test_grading_and_path_datasets_have_no_inputs() -> None:
    run = resource("GradingRun", "qwen7b-pool")
    assert input_mounts(run, ResolvedInputs(), ROOT) == []
    sft = resource("SFTJob", dataset={"path": "cot.jsonl"}, model={"path": "/models/base"})
    assert input_flags(sft, input_mounts(sft, ResolvedInputs(), ROOT)) == []


def test_resolved_document_rewrites_claim_paths_and_drops_server_state() -> None:
    body = sample("GradingRun", "qwen7b-pool", suspend=True)
    body["metadata"].update(resourceVersion="5", labels={"team": "a"})
    body["status"] = {"phase": "Running"}
    run = RESOURCE_KINDS["GradingRun"].model_validate(body)
    doc = resolved_document(run, ResolvedInputs(), "/root")
    assert doc["metadata"] == {"name": "qwen7b-pool", "namespace": "ml"}
    assert "status" not in doc and "suspend" not in doc["spec"]
    assert doc["spec"]["questions"]["path"] == "/root/claims/datasets/pools/math-pool.jsonl"
    assert doc["spec"]["questions"]["claimName"] is None
    assert doc["spec"]["model"]["path"] == "/root/claims/models/Qwen2.5-7B-Instruct"
    assert doc["spec"]["grader"]["prm"]["model"]["path"] == "/root/claims/models/Qwen2.5-Math-PRM-7B"


def test_resolved_document_keeps_meaningful_nulls_and_hub_ids() -> None:
    run = resource(
        "GradingRun",
        "qwen7b-pool",
        questions={"path": "pool.jsonl", "fields": {"answer": None, "problem": "q"}},
        model={"hubId": "Qwen/Qwen2.5-0.5B"},
    )
    doc = resolved_document(run, ResolvedInputs(), ROOT)
    assert doc["spec"]["questions"]["fields"]["answer"] is None  # not the default "answer"
    assert doc["spec"]["questions"]["path"] == "/pool.jsonl"  # relative without a claim: the image's root
    assert doc["spec"]["model"]["hubId"] == "Qwen/Qwen2.5-0.5B" and doc["spec"]["model"]["path"] is None


def test_sft_base_model_comes_from_the_inputs_only_when_the_spec_has_none() -> None:
    bank_model = ModelSpec(path="base", claim_name="models")
    doc = resolved_document(resource("SFTJob"), ResolvedInputs(model=bank_model), ROOT)
    assert doc["spec"]["model"]["path"] == "/mnt/adacot/claims/models/base"
    own = resource("SFTJob", model={"path": "/weights/mine"})
    assert (
        resolved_document(own, ResolvedInputs(model=bank_model), ROOT)["spec"]["model"]["path"]
        == "/weights/mine"
    )


def test_inputs_come_from_the_producers_specs_never_from_their_status() -> None:
    """A forged status.output (a compromised pod pointing consumers at another claim) is ignored."""
    pool = sample("GradingRun", "qwen7b-pool")
    pool["status"] = {"output": {"claim": "someone-elses", "path": "their/data", "records": 3}}
    shared = sample("GradingRun", "qwen7b-eval", output={"existingClaim": "shared", "subPath": "eval"})
    producers = {
        ("GradingRun", "qwen7b-pool"): pool,
        ("GradingRun", "qwen7b-eval"): shared,
        ("GradingRun", "broken"): {"spec": {}},
    }
    inputs = ResolvedInputs.from_producers(producers)
    assert inputs.outputs == {
        ("GradingRun", "qwen7b-pool"): OutputStatus(
            claim=child_name("GradingRun", "qwen7b-pool"), path="ml/GradingRun/qwen7b-pool"
        ),
        ("GradingRun", "qwen7b-eval"): OutputStatus(claim="shared", path="eval"),
    }
    assert inputs.model is None
