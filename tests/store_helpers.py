"""Toy records and a manifest shared by the artifact tests (tests/unit/test_store.py, test_shards.py)."""

from __future__ import annotations

from collections.abc import Iterator

from adacot.api.common import TaskType
from adacot.artifacts.manifest import Manifest
from adacot.artifacts.rows import Question


def question(i: int) -> Question:
    return Question(
        id=f"q{i:04d}", task=TaskType.math, problem=f"What is {i}+{i}?", answer=str(2 * i), source="toy"
    )


def questions(start: int, stop: int) -> Iterator[Question]:
    return (question(i) for i in range(start, stop))


def manifest() -> Manifest:
    return Manifest(kind="GradingRun", name="toy", spec={"k": 1}, seed=7, metrics={"accuracy": 0.5})


# -- shards, manifest, _SUCCESS -------------------------------------------------------------------
