"""docs/reference.md: in sync with the models (the drift check), complete, and saying the right things.

Completeness is checked against an independent walk of the pydantic models, so a generator that skips
a field (a list of models, a map, an inherited block) cannot hide it. Rows are read back from the
committed markdown, i.e. what a reader sees.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field

from adacot.api import RESOURCE_KINDS
from adacot.api.codegen import docs as docgen
from adacot.api.common import ApiModel
from adacot.api.resource import Resource, phase_columns
from adacot.api.rules import cel, immutable, validations
from adacot.api.status import Phase, ResourceStatus
from adacot.cli.docs import docs as docs_command

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
COLUMNS = ("path", "type", "required", "default", "allowed", "description")
STATUS_COLUMNS = ("path", "type", "allowed", "description")


def read_rows(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """Kind -> field path -> cells, from the rows of the field and status tables (not the rules)."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    kind, columns = "", None
    for line in text.splitlines():
        if line.startswith("## "):
            kind = line[3:].strip()
        elif line.startswith("### "):
            columns = {"fields": COLUMNS, "status": STATUS_COLUMNS}.get(line.rsplit(" ", 1)[-1])
        elif line.startswith("| `") and kind and columns:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            found.setdefault(kind, {})[cells[0].strip("`")] = dict(zip(columns, cells, strict=True))
    return found


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, dict[str, str]]]:
    return read_rows(REFERENCE.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ drift


def test_committed_reference_equals_the_generated_one() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == docgen.generate(), "run `adacot docs` and commit"
    result = CliRunner().invoke(docs_command, ["--check", "--out", str(REFERENCE)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_fails_on_an_edited_or_missing_file_and_writes_nothing(tmp_path: Path) -> None:
    edited = tmp_path / "reference.md"
    text = REFERENCE.read_text(encoding="utf-8").replace("| integer |", "| string |", 1)
    edited.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(docs_command, ["--check", "--out", str(edited)])
    assert result.exit_code == 1
    assert f"differs: {edited}" in result.output and "+| `" in result.output
    assert "run `adacot docs" in result.output
    assert edited.read_text(encoding="utf-8") == text  # --check wrote nothing
    missing = CliRunner().invoke(docs_command, ["--check", "--out", str(tmp_path / "none.md")])
    assert missing.exit_code == 1 and "missing: " in missing.output
    assert CliRunner().invoke(docs_command, ["--out", str(edited)]).exit_code == 0
    assert edited.read_text(encoding="utf-8") == REFERENCE.read_text(encoding="utf-8")
    assert "unchanged" in CliRunner().invoke(docs_command, ["--out", str(edited)]).output


# ------------------------------------------------------------------------------------------ completeness


def model_paths(model: type[BaseModel], path: str) -> list[str]:
    """Every wire path under `model`, written the way the reference writes them (lists `[]`, maps
    `.<key>`), found from the pydantic annotations alone."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        here = f"{path}.{info.alias or name}"
        found.append(here)
        inner, suffix = unwrap(info.annotation)
        if inner is not None:
            found += model_paths(inner, here + suffix)
    return found


def unwrap(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        inner, suffix = unwrap(args[0])
        return inner, "[]" + suffix
    if origin is dict:
        inner, suffix = unwrap(args[1])
        return inner, ".<key>" + suffix
    for arg in args:  # X | None
        inner, suffix = unwrap(arg)
        if inner is not None:
            return inner, suffix
    return None, ""


@pytest.mark.parametrize("kind", list(RESOURCE_KINDS))
def test_every_spec_and_status_field_has_a_row(kind: str, rows: dict[str, dict[str, dict[str, str]]]) -> None:
    cls = RESOURCE_KINDS[kind]
    spec, _ = unwrap(cls.model_fields["spec"].annotation)
    status, _ = unwrap(cls.model_fields["status"].annotation)
    assert spec is not None and status is not None
    expected = model_paths(spec, "spec") + model_paths(status, "status")
    expected += [f"metadata.{f}" for f in ("name", "namespace", "labels", "annotations")]
    assert sorted(rows[kind]) == sorted(expected)
    assert all(r["description"] for r in rows[kind].values()), "a field without a description"


def test_a_kinds_own_fields_come_before_the_common_block(rows: dict[str, dict[str, dict[str, str]]]) -> None:
    paths = list(rows["GradingRun"])
    assert paths.index("spec.questions") < paths.index("spec.bankRef") < paths.index("spec.suspend")
    assert paths.index("metadata.name") < paths.index("spec.questions")


# ------------------------------------------------------------------------------------------ content


@pytest.mark.parametrize(
    ("kind", "path", "column", "expected"),
    [
        # Defaults from the pydantic fields, factories included (the CRD schema never sees those).
        ("DifficultyBank", "spec.resources", "default", ""),  # Resources() itself: no GPU
        ("GradingRun", "spec.resources", "default", "`{gpus: 1}`"),  # a GPU only when the block is absent
        ("DistillationJob", "spec.teacher.sampling", "default", "`{maxTokens: 32768}`"),
        ("DistillationJob", "spec.teacher.sampling.maxTokens", "default", "`16384`"),
        ("GradingRun", "spec.output", "default", "`{create: {}}`"),
        ("GradingRun", "spec.sampling.temperature", "default", "`0.6`"),
        ("GradingRun", "spec.grader.levels.cutPoints", "default", "`[0.2, 0.4, 0.6, 0.8]`"),
        ("GradingRun", "spec.model.trustRemoteCode", "default", "`false`"),
        ("GradingRun", "spec.questions.task", "default", "`math`"),
        ("SFTJob", "spec.training.learningRate", "default", "`1e-05`"),
        ("SFTJob", "spec.deepspeed.stage", "default", "`3`"),
        ("DistillationJob", "spec.distribution.prior.weights", "default", "`[5.0, 4.0, 3.0, 2.0, 1.0]`"),
        # Types, as kubectl explain names them.
        ("GradingRun", "spec.scheduling.nodeSelector", "type", "map[string]string"),
        ("DistillationJob", "spec.distribution.table", "type", "map[string]number"),
        ("DifficultyBank", "spec.sources", "type", "[]object"),
        ("GradingRun", "spec.scheduling.affinity", "type", "object (free-form)"),
        ("GradingRun", "status.startTime", "type", "string (date-time)"),
        # Required within the enclosing object.
        ("DistillationJob", "spec.bankRef", "required", "yes"),
        ("DistillationJob", "spec.size", "required", ""),
        ("GradingRun", "metadata.name", "required", "yes"),
    ],
)
def test_cells(kind: str, path: str, column: str, expected: str,
               rows: dict[str, dict[str, dict[str, str]]]) -> None:  # fmt: skip
    assert rows[kind][path][column] == expected


@pytest.mark.parametrize(
    ("kind", "path", "fragments"),
    [
        ("GradingRun", "spec.grader.method", ["`prm`, `passRate`"]),
        ("GradingRun", "spec.questions", ["immutable"]),
        ("GradingRun", "spec.sampling.topP", ["> 0", "≤ 1"]),
        ("GradingRun", "spec.grader.levels.cutPoints", ["exactly 4 items", "each item: > 0; < 1"]),
        ("GradingRun", "metadata.name", ["1 to 52 characters", "DNS-1123 label"]),
        ("GradingRun", "spec.resources.memory", ["Kubernetes quantity"]),
        ("GradingRun", "spec.questions.format", ["`^(auto\\|jsonl\\|parquet\\|hf_disk)$`"]),
        ("SFTJob", "spec.evaluation.datasets", ["non-empty"]),
        ("GradingRun", "status.phase", [f"`{p.value}`" for p in Phase]),
    ],
)
def test_allowed_values(kind: str, path: str, fragments: list[str],
                        rows: dict[str, dict[str, dict[str, str]]]) -> None:  # fmt: skip
    allowed = rows[kind][path]["allowed"]
    for fragment in fragments:
        assert fragment in allowed


def test_cross_field_rules_are_listed_with_their_object() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text[text.index("### DistillationJob rules") : text.index("### DistillationJob status")]
    one_of = "distribution: set exactly one of fromGradingRun, prior, table"
    assert f"| `spec.distribution` | {one_of} |" in section
    assert "| `spec.teacher` | teacher: set exactly one of endpoint, server |" in section
    assert "is immutable" not in section  # transition rules show as "immutable" on the field instead
    assert "| `spec` | scheduling can only be changed while spec.suspend is true (on update) |" in section


def test_cells_escape_pipes_tags_and_line_breaks() -> None:
    assert docgen.cell("a | b") == "a \\| b"
    assert docgen.cell("<think>…</think> then `<key>`, x < 1") == "&lt;think>…&lt;/think> then `<key>`, x < 1"
    assert docgen.cell("one\ntwo") == "one<br>two"


# ------------------------------------------------------------------------------------------ generator


class _Inner(ApiModel):
    """Inner block."""

    level: Literal["low", "high"] = Field(default="low", description="How much.")
    limit: int = Field(default=5, ge=1, le=9, description="A bounded count.")


class _Spec(ApiModel):
    """Try the generator."""

    model_config = ConfigDict(json_schema_extra=validations(cel("has(self.name)", "name is needed")))

    name: str = Field(min_length=1, description="A name.", json_schema_extra=immutable("name"))
    inner: _Inner = Field(default_factory=lambda: _Inner(limit=2), description="Block with a factory.")
    items: list[_Inner] = Field(default_factory=list, description="A list of blocks.")
    labels: dict[str, _Inner] = Field(default_factory=dict, description="A map of blocks.")


class _Trial(Resource[_Spec, ResourceStatus]):
    """A trial kind."""

    KIND: ClassVar[str] = "Trial"
    PLURAL: ClassVar[str] = "trials"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tr",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = phase_columns()
    kind: Literal["Trial"] = Field(default="Trial", description="Trial.")


def test_generator_on_a_small_kind() -> None:
    text = docgen.generate({"Trial": _Trial})
    trial = read_rows(text)["Trial"]
    assert trial["spec.name"]["allowed"] == "non-empty; immutable"
    assert trial["spec.inner"]["default"] == "`{limit: 2}`"  # the factory's difference only
    assert trial["spec.inner.limit"]["default"] == "`5`"
    assert trial["spec.inner.limit"]["allowed"] == "≥ 1; ≤ 9"
    assert trial["spec.items[].level"]["allowed"] == "`low`, `high`"
    assert trial["spec.labels"]["type"] == "map[string]object"
    assert "spec.labels.<key>.limit" in trial
    assert "| `spec` | name is needed |" in text
    assert "short names `tr`" in text and "Try the generator." in text
    assert yaml.safe_load(trial["spec.inner"]["default"].strip("`")) == {"limit": 2}
