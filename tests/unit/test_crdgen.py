"""The CRD generator on small models of its own: every conversion rule, and the loud failures."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from crd_validation import validate_object
from pydantic import BaseModel, ConfigDict, Field

from adacot.api.codegen.crds import HEADER, build_crd, compare, crd_filename, generate, render, write
from adacot.api.codegen.schema_k8s import SchemaError, strip_validation, to_structural
from adacot.api.common import ApiModel


class Mode(str, Enum):
    """How to run."""

    fast = "fast"
    slow = "slow"


class Limits(ApiModel):
    """Resource limits."""

    gpus: int = Field(default=1, ge=0, le=8, description="GPUs per pod.")
    share: float = Field(default=0.5, gt=0, lt=1, description="Fraction of the node.")


class Source(ApiModel):
    """Where questions come from: exactly one of path or run."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"message": "set exactly one of path or run",
         "rule": "(has(self.path) ? 1 : 0) + (has(self.run) ? 1 : 0) == 1"},
    ]})  # fmt: skip

    path: str | None = Field(default=None, min_length=1, description="A file.")
    run: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$", description="A GradingRun name.")


class DemoSpec(ApiModel):
    """What to run."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(oldSelf.model) || self.model == oldSelf.model", "message": "model is immutable"},
    ]})  # fmt: skip

    model: str = Field(description="Model path.", max_length=200)
    mode: Mode = Field(default=Mode.fast, description="Speed.")
    level: Literal["easy", "hard"] | None = Field(default=None, description="Difficulty.")
    limits: Limits = Field(default_factory=Limits, description="Limits for the pods.")
    maybe_limits: Limits | None = Field(default=None, description="Optional limits.")
    sources: list[Source] = Field(default_factory=list, max_length=4, description="Question sources.")
    tags: set[str] = Field(default_factory=set, description="Tags.")
    weights: dict[str, float] = Field(default_factory=dict, description="Per-level weights.")
    affinity: dict[str, Any] | None = Field(default=None, description="Free-form pod affinity.")
    port: int | str = Field(default=8000, description="Port number or name.")
    scale: int | float = Field(default=1, description="Scale.")
    tier: Literal["a"] | Literal["b"] = Field(default="a", description="Tier.")


class DemoStatus(ApiModel):
    """What happened."""

    phase: Literal["Pending", "Done"] | None = Field(default=None, description="Phase.")
    count: int = Field(default=0, ge=0, description="Rows.")


class Demo(ApiModel):
    """A demo resource."""

    KIND: ClassVar[str] = "Demo"
    PLURAL: ClassVar[str] = "demos"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("dm",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    api_version: str = Field(default="adacot.dev/v1alpha1", description="API version.")
    kind: str = Field(default="Demo", description="Kind.")
    metadata: dict[str, Any] = Field(description="Metadata.")
    spec: DemoSpec = Field(description="The spec.")
    status: DemoStatus | None = Field(default=None, description="The status.")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd(Demo, "adacot.dev", "v1alpha1")


def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[no-any-return]


def test_names_scope_and_subresources(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "demos.adacot.dev"
    assert crd["spec"]["names"] == {
        "kind": "Demo", "listKind": "DemoList", "plural": "demos", "singular": "demo", "shortNames": ["dm"],
        "categories": ["adacot"],
    }  # fmt: skip
    version = crd["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd_filename(crd) == "adacot.dev_demos.yaml"


def test_refs_inlined_and_descriptions_kept(crd: dict[str, Any]) -> None:
    spec = spec_schema(crd)
    assert "$ref" not in str(spec) and "title" not in yaml.safe_dump(spec).split(":")
    limits = spec["properties"]["limits"]
    assert limits["description"] == "Limits for the pods."  # the field's words beat the docstring
    assert limits["properties"]["gpus"] == {"description": "GPUs per pod.", "type": "integer", "default": 1,
                                            "minimum": 0, "maximum": 8}  # fmt: skip
    assert "default" not in limits  # default_factory has no JSON-schema default


def test_exclusive_bounds_become_openapi3_flags(crd: dict[str, Any]) -> None:
    share = spec_schema(crd)["properties"]["limits"]["properties"]["share"]
    assert share["minimum"] == 0 and share["exclusiveMinimum"] is True
    assert share["maximum"] == 1 and share["exclusiveMaximum"] is True


def test_optional_becomes_nullable_without_null_default(crd: dict[str, Any]) -> None:
    props = spec_schema(crd)["properties"]
    assert props["level"] == {"description": "Difficulty.", "type": "string", "enum": ["easy", "hard"],
                              "nullable": True}  # fmt: skip
    assert props["maybeLimits"]["type"] == "object" and props["maybeLimits"]["nullable"] is True
    assert props["maybeLimits"]["description"] == "Optional limits."


def test_enums_sets_maps_and_simple_unions(crd: dict[str, Any]) -> None:
    props = spec_schema(crd)["properties"]
    assert props["mode"]["enum"] == ["fast", "slow"] and props["mode"]["default"] == "fast"
    assert props["tags"] == {"description": "Tags.", "type": "array", "items": {"type": "string"},
                             "x-kubernetes-list-type": "set"}  # fmt: skip
    assert props["weights"]["additionalProperties"] == {"type": "number"}
    assert props["affinity"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["port"]["x-kubernetes-int-or-string"] is True and "type" not in props["port"]
    assert props["scale"]["type"] == "number"
    assert props["tier"]["enum"] == ["a", "b"]
    assert props["sources"]["maxItems"] == 4 and props["sources"]["items"]["type"] == "object"


def test_cel_rules_copied_from_models(crd: dict[str, Any]) -> None:
    spec = spec_schema(crd)
    assert spec["x-kubernetes-validations"] == [
        {"rule": "!has(oldSelf.model) || self.model == oldSelf.model", "message": "model is immutable"}
    ]
    item = spec["properties"]["sources"]["items"]
    assert item["x-kubernetes-validations"][0]["message"] == "set exactly one of path or run"
    assert list(item["x-kubernetes-validations"][0]) == ["rule", "message"]  # stable key order


def test_status_keeps_shape_only(crd: dict[str, Any]) -> None:
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["count"] == {"description": "Rows.", "type": "integer"}
    assert "enum" not in status["properties"]["phase"]
    assert "nullable" not in status


def test_metadata_is_a_bare_object_and_spec_required(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert set(root["properties"]["metadata"]) == {"type", "description"}
    assert root["required"] == ["spec"]


def test_printer_columns_kept_in_order(crd: dict[str, Any]) -> None:
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Phase", "Age"]
    assert columns[0]["jsonPath"] == ".status.phase"


def test_printer_columns_without_status_phase_are_refused() -> None:
    class LastCondition(Demo):
        PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = (
            {"name": "Phase", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        )

    with pytest.raises(SchemaError, match=r"Phase=\.status\.phase"):
        build_crd(LastCondition, "adacot.dev", "v1alpha1")


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (Limits | Source, "union"),
        (str | list[str], "union"),
        (tuple[int, str], "prefixItems"),
        (set[Limits] | None, "set of non-scalar"),
    ],
)
def test_unstructural_fields_fail_loudly_with_their_path(annotation: Any, message: str) -> None:
    class Bad(ApiModel):
        """Bad."""

        field_x: annotation = Field(description="x")

    schema = Bad.model_json_schema(by_alias=True)
    with pytest.raises(SchemaError, match=message) as info:
        to_structural(schema, schema.get("$defs", {}), "Bad")
    assert "Bad.fieldX" in str(info.value)


@pytest.mark.parametrize("pattern", [r"^(?!kube-).*$", r"(?<=a)b", r"(a)\1"])
def test_non_re2_patterns_are_refused(pattern: str) -> None:
    # pydantic's default regex engine refuses these too, but models may opt into python-re.
    node = {"type": "object", "properties": {"name": {"type": "string", "pattern": pattern}}}
    with pytest.raises(SchemaError, match=r"X\.name: pattern .*RE2"):
        to_structural(node, {}, "X")


def test_recursive_model_is_refused() -> None:
    class Node(BaseModel):
        child: Node | None = None

    schema = Node.model_json_schema()
    with pytest.raises(SchemaError, match="recursive model Node"):
        to_structural(schema, schema.get("$defs", {}), "Node")


def test_strip_validation_removes_bounds_and_rules() -> None:
    node = {"type": "object", "x-kubernetes-validations": [{"rule": "true"}], "required": ["a"],
            "properties": {"a": {"type": "integer", "minimum": 1, "description": "A."}}}  # fmt: skip
    assert strip_validation(node) == {"type": "object", "properties": {"a": {"type": "integer",
                                                                           "description": "A."}}}  # fmt: skip


def test_render_is_deterministic_with_header(crd: dict[str, Any]) -> None:
    text = render(crd)
    assert text.startswith(HEADER)
    assert text == render(build_crd(Demo, "adacot.dev", "v1alpha1"))
    assert yaml.safe_load(text.split("---\n", 1)[1]) == crd


def test_write_then_compare_detects_edits_missing_and_extra(tmp_path: Path) -> None:
    files = generate({"Demo": Demo})
    write(tmp_path, files)
    assert compare(tmp_path, files).clean
    (tmp_path / "adacot.dev_demos.yaml").write_text(files["adacot.dev_demos.yaml"].replace("GPUs", "CPUs"))
    (tmp_path / "adacot.dev_olds.yaml").write_text("stale")
    (tmp_path / "notes.yaml").write_text("not ours")
    drift = compare(tmp_path, files)
    assert drift.extra == ["adacot.dev_olds.yaml"] and "+" in drift.changed["adacot.dev_demos.yaml"]
    write(tmp_path, files)
    assert compare(tmp_path, files).clean and (tmp_path / "notes.yaml").exists()


def demo_object(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": "Demo", "metadata": {"name": "d1"},
            "spec": {"model": "/models/s", **spec}}  # fmt: skip


@pytest.fixture(scope="module")
def demo_crds(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"Demo": crd}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, None),
        ({"sources": [{"path": "a.jsonl"}], "port": "http", "scale": 2, "affinity": {"any": [1]}}, None),
        ({"limits": {"gpus": 9}}, "spec.limits.gpus: 9 is greater than the maximum of 8"),
        ({"limits": {"share": 1}}, "spec.limits.share: 1 is greater than or equal to the maximum of 1"),
        ({"mode": "medium"}, "spec.mode: 'medium' is not one of ['fast', 'slow']"),
        ({"sources": [{"path": "a", "run": "b"}]}, "spec.sources[0]: set exactly one of path or run"),
        ({"sources": [{}]}, "spec.sources[0]: set exactly one of path or run"),
        ({"sources": [{"run": "Bad_Name"}]}, "spec.sources[0].run: 'Bad_Name' does not match"),
        ({"typo": 1}, "spec.typo: unknown field"),
        ({"tags": ["a", "a"]}, "spec.tags: ['a', 'a'] has non-unique elements"),
    ],
)
def test_helper_validates_schema_and_cel(demo_crds: Any, spec: dict[str, Any], expected: str | None) -> None:
    errors = validate_object(demo_object(**spec), crds=demo_crds)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_helper_reports_missing_required_field(demo_crds: Any) -> None:
    obj = demo_object()
    del obj["spec"]["model"]
    assert validate_object(obj, crds=demo_crds) == ["spec.model: required field is missing"]


def test_helper_applies_defaults_before_rules(demo_crds: Any) -> None:
    # A null on a non-nullable defaulted field is pruned, then defaulted, as the API server does.
    assert validate_object(demo_object(mode=None), crds=demo_crds) == []
    assert validate_object(demo_object(level=None), crds=demo_crds) == []


def test_helper_transition_rules_only_on_update(demo_crds: Any) -> None:
    new = demo_object()
    new["spec"]["model"] = "/models/t"
    assert validate_object(new, crds=demo_crds) == []  # create: oldSelf rules are skipped
    assert validate_object(new, demo_object(), crds=demo_crds) == ["spec: model is immutable"]
    assert validate_object(demo_object(), demo_object(), crds=demo_crds) == []


def test_yaml_11_boolean_words_are_quoted_for_kubectl() -> None:
    """kubectl reads YAML 1.1: a bare `n:` key (sampling.n) would reach the API server as "false"."""
    text = render({"spec": {"properties": {"n": {"type": "integer"}, "y": {}, "name": {}}}})
    assert '"n":' in text and '"y":' in text and " name:" in text
    assert yaml.safe_load(text.split("---\n", 1)[1])["spec"]["properties"].keys() == {"n", "y", "name"}
    committed = "".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "crds").glob("*.yaml"))
    assert not any(line.strip() in ("n:", "y:", "N:", "Y:") for line in committed.splitlines())
