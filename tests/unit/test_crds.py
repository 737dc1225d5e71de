"""The committed crds/: in sync with the models, structural, helpful, and enforcing the models' rules.

Structural checks here are written independently of adacot.api.codegen.schema_k8s, so a converter bug cannot
hide itself. Samples under crds/samples/ are validated with tests/crd_validation.py (schema + CEL).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from crd_validation import CRD_DIR, _program, load_crds, schema_errors, validate_object

from adacot.api import RESOURCE_KINDS
from adacot.api.codegen.crds import HEADER
from adacot.cli.crds import crds as crds_command

SAMPLES = CRD_DIR / "samples"
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
FORBIDDEN = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "title", "uniqueItems"}
# `kubectl apply` (client side) stores the object in an annotation limited to 256 KiB.
APPLY_ANNOTATION_LIMIT = 262144


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("adacot.dev_*.yaml"))


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its field path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from nodes(node[key], f"{path}[*]")


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return load_crds()


def test_one_crd_per_kind_with_header() -> None:
    assert [p.name for p in crd_files()] == sorted(f"adacot.dev_{cls.PLURAL}.yaml"
                                                   for cls in RESOURCE_KINDS.values())  # fmt: skip
    for path in crd_files():
        assert path.read_text(encoding="utf-8").startswith(HEADER)


def test_check_passes_on_committed_files() -> None:
    result = CliRunner().invoke(crds_command, ["--check", "--out", str(CRD_DIR)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_passes_through_the_console_script() -> None:
    script = Path(sys.executable).with_name("adacot")
    done = subprocess.run([str(script), "crds", "--check", "--out", str(CRD_DIR)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_fails_on_edited_missing_and_extra_files(tmp_path: Path) -> None:
    out = tmp_path / "crds"
    shutil.copytree(CRD_DIR, out, ignore=shutil.ignore_patterns("samples"))
    edited, removed = crd_files()[0].name, crd_files()[1].name
    text = (out / edited).read_text(encoding="utf-8")
    (out / edited).write_text(text.replace("type: integer", "type: string", 1), encoding="utf-8")
    (out / removed).unlink()
    (out / "adacot.dev_renamedkinds.yaml").write_text(HEADER, encoding="utf-8")
    result = CliRunner().invoke(crds_command, ["--check", "--out", str(out)])
    assert result.exit_code == 1
    assert f"differs: {out / edited}" in result.output and "+" in result.output
    assert f"missing: {out / removed}" in result.output
    assert "extra:   " in result.output and "adacot.dev_renamedkinds.yaml" in result.output
    assert "run `adacot crds" in result.output
    assert (out / edited).read_text(encoding="utf-8") != text  # --check wrote nothing
    assert CliRunner().invoke(crds_command, ["--out", str(out)]).exit_code == 0
    assert CliRunner().invoke(crds_command, ["--check", "--out", str(out)]).exit_code == 0
    assert not (out / "adacot.dev_renamedkinds.yaml").exists()


def test_write_into_an_empty_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(crds_command, ["--out", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    for path in crd_files():
        assert (tmp_path / "new" / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", crd_files(), ids=lambda p: p.name)
def test_schema_is_structural(path: Path) -> None:
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    root = root_schema(crd)
    problems = [f"{where}: {p}" for where, node in nodes(root) for p in structural_problems(node)]
    assert root["properties"]["metadata"] in ({"type": "object"},
                                              {"type": "object", "description": root["properties"]["metadata"]
                                               .get("description")})  # fmt: skip
    assert problems == []


def structural_problems(node: dict[str, Any]) -> list[str]:
    problems = [f"forbidden key {k}" for k in FORBIDDEN & set(node)]
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if node.get("type") not in TYPES and not untyped_ok:
        problems.append(f"type {node.get('type')!r}")
    if "properties" in node and "additionalProperties" in node:
        problems.append("properties beside additionalProperties")
    if isinstance(node.get("additionalProperties"), bool):
        problems.append("boolean additionalProperties")
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if flag in node and (node[flag] is not True or bound not in node):
            problems.append(f"{flag} must be `true` beside {bound}")
    if node.get("nullable") and node.get("default", 0) is None:
        problems.append("null default")
    if "default" in node and schema_errors(node["default"], node):
        problems.append(f"default {node['default']!r} does not satisfy its own schema")
    for rule in node.get("x-kubernetes-validations", []):
        _program(rule["rule"])  # raises on a CEL syntax error
        if not rule.get("message"):
            problems.append(f"rule {rule['rule']!r} has no message")
    return problems


@pytest.mark.parametrize("path", crd_files(), ids=lambda p: p.name)
def test_every_property_has_a_description(path: Path) -> None:
    root = root_schema(yaml.safe_load(path.read_text(encoding="utf-8")))
    missing = [where for where, node in nodes(root) if where and not where.endswith("[*]")
               and not node.get("description")]  # fmt: skip
    assert missing == [], f"{path.name}: fields without description (kubectl explain shows nothing)"


def test_names_categories_and_printer_columns(crds: dict[str, dict[str, Any]]) -> None:
    short_names: list[str] = []
    for kind, crd in crds.items():
        names = crd["spec"]["names"]
        assert names["categories"] == ["adacot"] and names["shortNames"], kind
        assert names["listKind"] == f"{kind}List"
        short_names += names["shortNames"]
        columns = {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
        assert columns["Phase"] == ".status.phase" and columns["Age"] == ".metadata.creationTimestamp"
        assert not any("conditions" in p for p in columns.values()), kind
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert len(short_names) == len(set(short_names)), "short names collide across kinds"


@pytest.mark.parametrize("path", crd_files(), ids=lambda p: p.name)
def test_small_enough_for_client_side_apply(path: Path) -> None:
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert len(json.dumps(crd)) < APPLY_ANNOTATION_LIMIT


@pytest.mark.parametrize("path", crd_files(), ids=lambda p: p.name)
def test_crd_object_valid_for_kubernetes_api(path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    crd = yaml.safe_load(path.read_text(encoding="utf-8"))
    kubernetes_validate.validate(crd, "1.30.0", strict=True)  # raises ValidationError naming the field


def sample_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


@pytest.mark.parametrize("path", sample_files(SAMPLES), ids=lambda p: p.name)
def test_sample_is_accepted(path: Path, crds: dict[str, dict[str, Any]]) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs, f"{path} holds no documents"
    for doc in docs:
        assert validate_object(doc, crds=crds) == [], f"{path}: {doc['kind']}/{doc['metadata']['name']}"
        RESOURCE_KINDS[doc["kind"]].model_validate(doc)  # the CLI accepts it too


@pytest.mark.parametrize("path", sample_files(SAMPLES / "invalid"), ids=lambda p: p.name)
def test_invalid_sample_is_rejected_with_its_message(path: Path, crds: dict[str, dict[str, Any]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines and lines[0].startswith("# expect:"), f"{path}: first line must be `# expect: <text>`"
    expected = lines[0].removeprefix("# expect:").strip()
    pydantic_only = len(lines) > 1 and lines[1].strip() == "# rejected-by: pydantic"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = validate_object(doc, crds=crds)
    if pydantic_only:
        # A cross-field check with no CEL twin: the CRD lets it through, the CLI/operator must not.
        assert errors == [], f"{path} says pydantic-only but the CRD rejects it: {errors}"
        with pytest.raises(ValueError, match=None) as info:
            RESOURCE_KINDS[doc["kind"]].model_validate(doc)
        assert expected in str(info.value)
    else:
        assert any(expected in e for e in errors), f"{path}: expected {expected!r} in {errors}"


MINIMAL_SPECS: dict[str, dict[str, Any]] = {
    "GradingRun": {"questions": {"path": "/data/q.jsonl"}, "model": {"path": "/models/s"},
                   "grader": {"prm": {"model": {"path": "/models/prm"}}}},
    "DifficultyBank": {"sources": [{"gradingRunRef": {"name": "grade-s"}}]},
    "DistillationJob": {"bankRef": {"name": "bank-s"}, "size": 2000,
                        "distribution": {"prior": {"weights": [5, 4, 3, 2, 1]}},
                        "teacher": {"endpoint": {"url": "http://teacher:8000/v1", "model": "r1"}}},
    "SFTJob": {"dataset": {"distillationJobRef": {"name": "distil-s"}}},
}  # fmt: skip
# One field per kind whose CEL rule makes it immutable, and a changed value for it.
IMMUTABLE_CHANGES = {
    "GradingRun": ("model", {"path": "/models/other"}),
    "DifficultyBank": ("output", {"existingClaim": "other-claim"}),
    "DistillationJob": ("size", 500),
    "SFTJob": ("dataset", {"distillationJobRef": {"name": "distil-t"}}),
}


def minimal(kind: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": {"name": f"{kind.lower()}-a"},
            "spec": {**copy.deepcopy(MINIMAL_SPECS[kind]), **spec}}  # fmt: skip


@pytest.mark.parametrize("kind", list(MINIMAL_SPECS))
def test_minimal_objects_pass_both_crd_and_models(kind: str, crds: dict[str, dict[str, Any]]) -> None:
    assert validate_object(minimal(kind), crds=crds) == []
    RESOURCE_KINDS[kind].model_validate(minimal(kind))


@pytest.mark.parametrize("kind", list(MINIMAL_SPECS))
def test_objects_defaulted_by_the_models_pass_the_crd(kind: str, crds: dict[str, dict[str, Any]]) -> None:
    # pydantic fills default_factory blocks the API server leaves absent; both forms must pass the CRD.
    dumped = RESOURCE_KINDS[kind].model_validate(minimal(kind)).model_dump(mode="json", by_alias=True,
                                                                           exclude_none=True)  # fmt: skip
    assert validate_object(dumped, crds=crds) == []


def test_prior_with_default_weights_is_accepted(crds: dict[str, dict[str, Any]]) -> None:
    # weights is defaulted by pydantic only; a rule reading it unguarded fails at runtime on the server.
    obj = minimal("DistillationJob", distribution={"prior": {}})
    RESOURCE_KINDS["DistillationJob"].model_validate(obj)
    assert validate_object(obj, crds=crds) == []


@pytest.mark.parametrize("kind", list(IMMUTABLE_CHANGES))
def test_changing_an_immutable_field_is_rejected(kind: str, crds: dict[str, dict[str, Any]]) -> None:
    name, value = IMMUTABLE_CHANGES[kind]
    old = minimal(kind, output={"existingClaim": "claim-a"}) if name == "output" else minimal(kind)
    new = copy.deepcopy(old)
    new["spec"][name] = value
    assert validate_object(new, crds=crds) == []  # a fresh object with that value is fine
    assert validate_object(new, old, crds=crds) == [f"spec.{name}: {name} is immutable"]


SUSPEND_CASES = [(False, False, False), (True, True, True), (True, False, True), (False, True, True)]


@pytest.mark.parametrize("kind", list(MINIMAL_SPECS))
@pytest.mark.parametrize(("old_suspended", "new_suspended", "accepted"), SUSPEND_CASES)
def test_scheduling_editable_only_while_suspended(
    kind: str, old_suspended: bool, new_suspended: bool, accepted: bool, crds: dict[str, dict[str, Any]]
) -> None:
    old = minimal(kind, suspend=old_suspended)
    new = minimal(kind, suspend=new_suspended, scheduling={"nodeSelector": {"gpu": "h100"}})
    errors = validate_object(new, old, crds=crds)
    assert errors == ([] if accepted else ["spec: scheduling can only be changed while spec.suspend is true"])
    assert validate_object(minimal(kind, suspend=False), old, crds=crds) == []  # unchanged scheduling
