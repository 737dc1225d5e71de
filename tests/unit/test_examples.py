"""examples/distill.yaml: loads, passes the API server's validation (generated CRDs, CEL), plans with
`adacot run`'s claim mapping, and stays in step with its walk-through (docs/pipeline.md) and the README.

Planning runs the real runner against temporary claim directories holding the files the example names
(model directories need only a config.json to be planned).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from crd_validation import validate_object
from pydantic import BaseModel

from adacot.api import RESOURCE_KINDS
from adacot.api.loader import load_resources
from adacot.api.workload import CommonSpec
from adacot.cli.run import run as run_command
from adacot.runner import PlanError, plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE = EXAMPLES / "distill.yaml"
DATASET_FILES = ("pools/math-pool.jsonl", "eval/math500.jsonl", "eval/aime24.jsonl")
MODEL_DIRS = ("Qwen2.5-7B-Instruct", "Qwen2.5-Math-PRM-7B")
ORDER = ["GradingRun/qwen7b-pool", "GradingRun/qwen7b-eval", "DifficultyBank/qwen7b-bank",
         "DistillationJob/qwen7b-distil", "SFTJob/qwen7b-sft"]  # fmt: skip


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@pytest.fixture
def claims(tmp_path: Path) -> dict[str, Path]:
    """Claim directories holding every file and model the example names."""
    datasets, models = tmp_path / "data", tmp_path / "models"
    for name in DATASET_FILES:
        (datasets / name).parent.mkdir(parents=True, exist_ok=True)
        (datasets / name).write_text('{"problem": "1+1?", "answer": "2"}\n', encoding="utf-8")
    for name in MODEL_DIRS:
        (models / name).mkdir(parents=True)
        (models / name / "config.json").write_text("{}", encoding="utf-8")
    return {"datasets": datasets, "models": models}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_is_accepted_by_the_loader_and_the_crds(path: Path) -> None:
    resources = load_resources(path)
    assert resources
    for doc in documents(path):
        assert validate_object(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_crd_sample_is_the_example_itself() -> None:
    """One copy: crds/samples/distill.yaml (used by the CRD sample tests and the demo) is a link."""
    assert (ROOT / "crds" / "samples" / "distill.yaml").resolve() == EXAMPLE.resolve()


def test_plans_with_claims_mapped_to_local_directories(tmp_path: Path, claims: dict[str, Path]) -> None:
    stages = plan(EXAMPLE, tmp_path / "work", claims=claims)
    assert [s.label for s in stages] == ORDER
    pool, _, bank, distil, sft = stages
    spec: Any = pool.resource.spec
    assert spec.questions.path == str(claims["datasets"].resolve() / "pools/math-pool.jsonl")
    assert spec.questions.claim_name is None  # a claim mapped to a directory is a plain local path
    assert spec.grader.prm.model.path == str(claims["models"].resolve() / "Qwen2.5-Math-PRM-7B")
    assert pool.out_dir == tmp_path / "work" / "default" / "GradingRun" / "qwen7b-pool"
    assert bank.inputs == (("default", "GradingRun", "qwen7b-pool"),)
    assert set(distil.inputs) == {("default", "DifficultyBank", "qwen7b-bank"),
                                  ("default", "GradingRun", "qwen7b-eval")}  # fmt: skip
    trained: Any = sft.resource.spec
    assert trained.model.path == str(claims["models"].resolve() / "Qwen2.5-7B-Instruct")  # from the bank


def test_unmapped_claims_and_missing_files_are_named(tmp_path: Path, claims: dict[str, Path]) -> None:
    with pytest.raises(PlanError) as unmapped:
        plan(EXAMPLE, tmp_path / "work")
    message = str(unmapped.value)
    where = "distill.yaml, document 1 (GradingRun/qwen7b-pool)"
    assert f"{where}: spec.questions.claimName: claim 'datasets'" in message
    assert "give --claim models=DIR" in message
    (claims["datasets"] / "eval" / "aime24.jsonl").unlink()
    with pytest.raises(PlanError) as missing:
        plan(EXAMPLE, tmp_path / "work", claims=claims)
    assert "(DifficultyBank/qwen7b-bank): spec.decontamination.benchmarks[1].path: " in str(missing.value)


def test_adacot_run_refuses_the_example_without_claims_before_any_stage(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        run_command, [str(EXAMPLE), "--workdir", str(tmp_path / "w"), "--no-progress"]
    )
    assert result.exit_code == 2
    assert "give --claim datasets=DIR" in result.output
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------------------ the docs


def set_paths(value: Any, path: str) -> list[str]:
    """The leaf field paths a document sets (list items written `[]`)."""
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in set_paths(child, f"{path}.{key}")]
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [p for item in value for p in set_paths(item, f"{path}[]")]
    return [path]


def test_the_walk_through_explains_every_field_the_example_sets() -> None:
    walk_through = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    for doc in documents(EXAMPLE):
        for path in set_paths(doc["spec"], "spec"):
            assert f"`{path}`" in walk_through, f"docs/pipeline.md does not explain {doc['kind']} {path}"
    for name in (*DATASET_FILES, *MODEL_DIRS):
        assert name in walk_through


def test_readme_field_table_names_real_top_level_fields() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## distill.yaml, field by field") :]
    section = section[: section.index("\n## ", 1)]
    cells = [[c.strip(" `") for c in line.split("|")[1:3]] for line in section.splitlines()]
    rows = {row[0]: re.findall(r"[A-Za-z]+", row[1]) for row in cells if row and row[0] in RESOURCE_KINDS}
    assert sorted(rows) == sorted(RESOURCE_KINDS)
    for kind, named in rows.items():
        spec = RESOURCE_KINDS[kind].model_fields["spec"].annotation
        assert isinstance(spec, type) and issubclass(spec, BaseModel)
        fields = {info.alias or name for name, info in spec.model_fields.items()}
        assert named and set(named) <= fields, f"{kind}: {set(named) - fields} are not spec fields"
    common = re.findall(r"`([A-Za-z]+)`", section[section.index("Every kind also takes") :])
    assert set(common) == {info.alias or name for name, info in CommonSpec.model_fields.items()}
