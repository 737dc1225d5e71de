"""The Result-Verifier for a task: math (answer equivalence) or code (tests in the sandbox).

Callers: the grading and distillation stages (adacot.stages.grade, adacot.stages.distill) and their
pipelines. One factory, so grading a question and keeping a teacher's CoT judge answers the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from adacot.api.common import TaskType
from adacot.api.generation import VerificationSpec
from adacot.artifacts.rows import Verdict


class ResponseVerifier(Protocol):
    """What grading needs of a verifier: MathVerifier (pairs of response, gold) and CodeVerifier
    (pairs of response, tests) both fit."""

    def verify_many(self, pairs: Iterable[tuple[str, Any]]) -> Iterator[Verdict]: ...

    def close(self) -> None: ...


def make_verifier(task: TaskType, spec: VerificationSpec) -> ResponseVerifier:
    """The Result-Verifier for a task, with the spec's workers and limits (imported lazily: the code
    verifier's sandbox is not needed for math runs)."""
    if task is TaskType.math:
        from adacot.verify.math import MathVerifier

        return MathVerifier(workers=spec.workers, timeout_s=spec.math_timeout_seconds)
    from adacot.verify.code import CodeVerifier
    from adacot.verify.sandbox import SandboxLimits

    limits = SandboxLimits(wall_seconds=spec.code_timeout_seconds, memory_bytes=spec.code_memory_bytes)
    return CodeVerifier(workers=spec.workers, limits=limits)
