"""docs/architecture.md stays true: its layer table is the import-linter contract that CI enforces, every
package of adacot is placed in a layer; and every module, function and source path that it, the README
or another page of docs/ names exists (so a move or rename cannot leave the docs behind)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
TEXT = DOC.read_text(encoding="utf-8")


def documented_layers() -> list[list[str]]:
    table = TEXT.split("<!-- layers")[1].split("<!-- /layers -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [re.findall(r"`([\w.]+)`", row.split(" | ")[0]) for row in rows]


def contract(name: str) -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_the_layer_table_is_the_import_contract() -> None:
    layers = contract("adacot's layers point down")["layers"]
    assert isinstance(layers, list)
    assert documented_layers() == [layer.split(" | ") for layer in layers]


def test_every_package_has_a_layer() -> None:
    placed = {name for row in documented_layers() for name in row}
    packages = {f"adacot.{p.parent.name}" for p in (REPO / "adacot").glob("*/__init__.py")}
    assert packages == placed
    loose = sorted(p.name for p in (REPO / "adacot").glob("*.py") if p.name != "__init__.py")
    assert loose == [], "modules at the top of adacot/ have no layer"


DOCS = [DOC, REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ALL_DOCS = "\n".join(d.read_text(encoding="utf-8") for d in DOCS)
NAMES = sorted(
    set(re.findall(r"(?<![\w/.-])adacot(?:_operator)?(?:\.[A-Za-z_]\w*)+", ALL_DOCS)) - {"adacot.dev"}
)


@pytest.mark.parametrize("dotted", NAMES)
def test_every_named_module_or_function_exists(dotted: str) -> None:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return
    pytest.fail(f"{dotted} names nothing")


@pytest.mark.parametrize(
    "path", sorted(set(re.findall(r"`((?:adacot|operator|tests|benchmarks)/[\w/.-]+)`", ALL_DOCS)))
)
def test_every_named_path_exists(path: str) -> None:
    assert (REPO / path).exists(), path


def test_every_operator_module_but_the_handlers_is_kept_free_of_kopf() -> None:
    package = REPO / "operator" / "adacot_operator"
    modules = {f"adacot_operator.{p.stem}" for p in package.glob("*.py")} | {
        f"adacot_operator.{p.parent.name}" for p in package.glob("*/__init__.py")
    }
    pure = modules - {"adacot_operator.__init__", "adacot_operator.__main__", "adacot_operator.handlers"}
    listed = contract("Only the operator's handlers import kopf; its builders and status code stay pure")
    assert sorted(pure) == sorted(listed["source_modules"])  # type: ignore[arg-type]
