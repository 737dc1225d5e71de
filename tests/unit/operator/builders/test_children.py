"""adacot_operator.builders.children (build_children) as data: every child of every kind a valid
Kubernetes object with labels, owner and spec hash; the hash follows what the pod would do; the stage
command parses with the real `adacot stage` options; missing inputs or uid are clear errors."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from adacot_operator.builders.children import build_children
from adacot_operator.resolve import InputsError, ResolvedInputs
from adacot_operator.settings import OperatorSettings
from builder_cases import HASH, INPUTS, SETTINGS, build, container, resource
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.grading_run import GradingRun
from adacot.api.stage_pod import BANK_FLAG, DATASET_FLAG, EVAL_GRADING_FLAG, RUN_FLAG
from adacot.api.status import OutputStatus
from adacot.cli.main import main

ALL_CASES = [
    ("GradingRun", "qwen7b-pool", {}),
    ("GradingRun", "qwen7b-eval", {"queueName": "gpu-queue", "activeDeadlineSeconds": 3600}),
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
        if flag in (RUN_FLAG, BANK_FLAG, EVAL_GRADING_FLAG, DATASET_FLAG):
            Path(value.split("=")[-1]).mkdir(parents=True)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(build(resource(kind, name), settings)["ConfigMap"]["data"]["spec.yaml"])
    args = [spec_file.as_posix() if a == "/etc/adacot/spec.yaml" else a for a in command[1:]]
    stage = main.commands["stage"].commands[command[2]]  # type: ignore[attr-defined]
    context = stage.make_context(command[2], args[2:])
    assert context.params["spec_path"] == spec_file


def test_missing_input_output_or_uid_is_a_clear_error() -> None:
    with pytest.raises(InputsError, match=r"input DifficultyBank/qwen7b-bank has no status\.output"):
        build_children(resource("DistillationJob"), ResolvedInputs(), SETTINGS)
    body = sample("GradingRun", "qwen7b-pool")
    del body["metadata"]["uid"]
    with pytest.raises(ValueError, match=r"metadata\.uid is unset"):
        build_children(GradingRun.model_validate(body), INPUTS, SETTINGS)


@pytest.mark.parametrize("retention", ["Retain", "Delete"])
@pytest.mark.parametrize("kind", ["GradingRun", "DifficultyBank", "DistillationJob", "SFTJob"])
def test_garbage_collection_alone_cleans_up_so_no_finalizer_is_needed(kind: str, retention: str) -> None:
    """Every child is owned by its resource (deleted with it), except a volume kept by Retain."""
    res = resource(kind, output={"create": {"size": "1Gi"}, "retention": retention})
    for child in build(res).values():
        meta = child["metadata"]
        assert "finalizers" not in meta
        kept = child["kind"] == "PersistentVolumeClaim" and retention == "Retain"
        owners = meta.get("ownerReferences", [])
        assert [o["uid"] for o in owners if o.get("controller")] == ([] if kept else [res.metadata.uid])
