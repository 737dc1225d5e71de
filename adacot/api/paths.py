"""Path walking over spec models: make every `path` absolute, list the claims a spec mounts, and find
paths that do not exist.

Callers: the local runner (adacot.runner: paths against the YAML file's directory and `--claim NAME=DIR`)
and the operator (adacot_operator.resolve: paths under the pod's claim mount points). A model with a
`path` field (and optionally `claim_name`) is a path-bearing block: DatasetSpec, ModelSpec, BankSource,
SftDataset, ResponsesSpec. Limits: only fields literally named `path`/`claim_name` are seen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from adacot.api.common import ModelSpec

M = TypeVar("M", bound=BaseModel)


def _children(model: BaseModel) -> list[BaseModel]:
    """The sub-models of `model`, in field order (lists flattened)."""
    found: list[BaseModel] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, BaseModel):
                found.append(child)
    return found


def claim_names(model: BaseModel) -> list[str]:
    """Every distinct `claimName` in `model` and its sub-models, in first-seen order (the claims a
    stage's pod must mount)."""
    names: list[str] = []
    own = getattr(model, "claim_name", None)
    if isinstance(own, str) and own:
        names.append(own)
    for child in _children(model):
        names += [n for n in claim_names(child) if n not in names]
    return names


def resolve_paths(model: M, base_dir: Path, claims: Mapping[str, Path], where: str, problems: list[str]) -> M:
    """A copy of `model` whose every `path` is absolute: under `claims[claimName]` when a claim is set
    (claimName then cleared), else under `base_dir` when relative. Unmapped claims go to `problems`."""
    updates: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value, here = getattr(model, name), f"{where}.{info.alias or name}"
        if isinstance(value, BaseModel):
            updates[name] = resolve_paths(value, base_dir, claims, here, problems)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            updates[name] = [
                resolve_paths(v, base_dir, claims, f"{here}[{i}]", problems) for i, v in enumerate(value)
            ]
    path, claim = getattr(model, "path", None), getattr(model, "claim_name", None)
    if isinstance(path, str):
        root = base_dir
        if claim:
            if claim not in claims:
                problems.append(
                    f"{where}.claimName: claim {claim!r} has no local directory (give --claim {claim}=DIR)"
                )
            root = claims.get(claim, base_dir)
            updates["claim_name"] = None
            path = path.lstrip("/")
        updates["path"] = os.path.normpath(root / path)  # "a/../b" would name the model "a/../b" in reports
    return model.model_copy(update=updates)


def missing_paths(model: BaseModel, where: str) -> list[str]:
    """Every `path` in `model` that does not exist; model directories must hold a config.json."""
    problems: list[str] = []
    for name, info in type(model).model_fields.items():
        value, here = getattr(model, name), f"{where}.{info.alias or name}"
        children = value if isinstance(value, list) else [value]
        for i, child in enumerate(children):
            if isinstance(child, BaseModel):
                problems += missing_paths(child, f"{here}[{i}]" if isinstance(value, list) else here)
    path = getattr(model, "path", None)
    if isinstance(path, str):
        if not Path(path).exists():
            problems.append(f"{where}.path: {path} does not exist")
        elif isinstance(model, ModelSpec) and not (Path(path) / "config.json").is_file():
            problems.append(f"{where}.path: {path} has no config.json (not a model directory)")
    return problems
