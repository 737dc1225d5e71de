"""The Verdict: the one result type every verifier returns and every stage stores."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Verdict(BaseModel):
    """Whether one response is right.

    `correct` is None when the verifier could not decide (the reference does not parse, the check
    timed out): such samples are reported, never silently counted as wrong or right.
    """

    model_config = ConfigDict(frozen=True)

    correct: bool | None
    reason: str = Field(
        description="Short machine-readable reason, e.g. equivalent, not_equivalent, "
        "no_answer, gold_unparseable, timeout, passed, failed_test, runtime_error."
    )
    extracted: str | None = Field(default=None, description="The extracted final answer or program.")
    detail: str | None = Field(
        default=None, description="Human-readable detail (first failing test, error text), capped in size."
    )
    passed: int | None = Field(default=None, description="Code: tests passed.")
    total: int | None = Field(default=None, description="Code: tests run.")

    @property
    def score(self) -> float | None:
        """Share of tests passed (code) or 1/0 (math); None when undecided."""
        if self.total:
            return (self.passed or 0) / self.total
        return None if self.correct is None else float(self.correct)
