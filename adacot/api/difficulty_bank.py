"""DifficultyBank: the reusable, per-model bank of graded questions ("static experience").

Read by the bank stage, the operator, the CRD generator, and DistillationJob (which samples from a bank).
A bank's inputs are its `sources`, the GradingRun named by `levels.cutPointsFrom` (read for its cut
points only) and every GradingRun whose `spec.bankRef` names it (see `adacot.api.dependency_graph`).
Limits: that all sources (and the cut-point run) grade the same model with the same grader is a
cross-object check made by the stage (it fails with reason ValidationFailed), not by this schema.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from adacot.api.common import ApiModel, DecontaminationSpec, LocalObjectReference, ModelSpec
from adacot.api.resource import Resource, phase_columns
from adacot.api.rules import cel, check_one_of, one_of_rule, validations
from adacot.api.status import DifficultyBankStatus
from adacot.api.workload import SCHEDULING_WHILE_SUSPENDED, CommonSpec, Resources


class BankSource(ApiModel):
    """One input of the bank: a GradingRun's output or a graded-questions file."""

    model_config = ConfigDict(
        json_schema_extra=validations(one_of_rule(("gradingRunRef", "path"), "sources[]"))
    )

    grading_run_ref: LocalObjectReference | None = Field(
        default=None, description="A GradingRun in this namespace."
    )
    path: str | None = Field(
        default=None, min_length=1, description="A graded-questions artifact directory or JSONL file."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BankSource:
        check_one_of(self, ("gradingRunRef", "path"), "sources[]")
        return self


class DedupeSpec(ApiModel):
    """Duplicate questions across sources, found by normalised text (case, whitespace, LaTeX spacing)."""

    enabled: bool = Field(default=True, description="Drop duplicates.")
    on_conflict: Literal["first", "hardest", "easiest"] = Field(
        default="first",
        description="Which grading of a duplicated question to keep: the first in source "
        "order, the hardest level or the easiest.",
    )


class BankLevels(ApiModel):
    """How the bank levels its unsolved questions (1..5), when not as each source graded them."""

    cut_points_from: LocalObjectReference = Field(
        description="A GradingRun (usually the evaluation run P_eval comes from) whose cut points "
        "re-level every unsolved entry by its score: with that run's grader.levels.mode quantiles, the cut "
        "points are fitted on its scores and frozen into the bank, so P_eval and the bank share one scale. "
        "The run must grade the same model with the same grader as the sources; it adds no questions "
        "unless it also feeds the bank."
    )


MODEL_MESSAGE = "model is required when every source is a path (it cannot be read from a GradingRun)"


class DifficultyBankSpec(CommonSpec):
    """Collect graded questions for one model into a bank distillation samples from."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            SCHEDULING_WHILE_SUSPENDED,
            cel(
                "has(self.model) || !has(self.sources) || size(self.sources) == 0 "
                "|| self.sources.exists(s, has(s.gradingRunRef))",
                MODEL_MESSAGE,
            ),
        )
    )

    model: ModelSpec | None = Field(
        default=None,
        description="The model the bank is graded for; defaults to the model of its GradingRuns.",
    )
    sources: list[BankSource] = Field(
        default_factory=list,
        max_length=256,
        description="Inputs besides the GradingRuns whose bankRef names this bank.",
    )
    dedupe: DedupeSpec = Field(default_factory=DedupeSpec, description="Duplicate handling.")
    levels: BankLevels | None = Field(
        default=None,
        description="Re-level unsolved questions with a GradingRun's cut points; unset keeps the "
        "level each source assigned (fixed bins 0.2/0.4/0.6/0.8 unless a source's grader says otherwise).",
    )
    decontamination: DecontaminationSpec | None = Field(
        default=None, description="Drop questions that overlap evaluation benchmarks."
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Compute per pod (the bank stage needs no GPU).",
    )

    @model_validator(mode="after")
    def _model_known(self) -> DifficultyBankSpec:
        if self.model is None and self.sources and all(s.grading_run_ref is None for s in self.sources):
            raise ValueError(MODEL_MESSAGE)
        return self


class DifficultyBank(Resource[DifficultyBankSpec, DifficultyBankStatus]):
    """A graded question bank for one model."""

    KIND: ClassVar[str] = "DifficultyBank"
    PLURAL: ClassVar[str] = "difficultybanks"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("bank", "db")
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = phase_columns(
        {
            "name": "Questions",
            "type": "integer",
            "jsonPath": ".status.questions",
            "description": "Questions in the bank.",
        },
    )

    kind: Literal["DifficultyBank"] = Field(default="DifficultyBank", description="DifficultyBank.")

    def references(self) -> list[tuple[str, str]]:
        refs = [("GradingRun", s.grading_run_ref.name) for s in self.spec.sources if s.grading_run_ref]
        levels = self.spec.levels
        if levels is not None and ("GradingRun", levels.cut_points_from.name) not in refs:
            refs.append(("GradingRun", levels.cut_points_from.name))
        return refs
