"""Status of the four resources, written by the operator (and by `adacot run` into its state file).

The operator computes status as one pure function of the resource and its children; these models are
that function's output type. Conditions follow the Kubernetes shape (metav1.Condition); `phase` is
derived from them so printer columns never read "the last condition". Limits: status is informative,
not a contract with the stages — the artifact's MANIFEST.json is the source of truth for counts and
hashes; status copies the stage's short summary.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import Field

from adacot.api.common import ApiModel


class ConditionType(str, Enum):
    """The condition types adacot sets."""

    InputsReady = "InputsReady"
    """Every referenced resource is Complete (or Ready for a bank)."""
    Admitted = "Admitted"
    """The child Jobs are admitted by the queue (always True without Kueue)."""
    Running = "Running"
    Suspended = "Suspended"
    Complete = "Complete"
    Failed = "Failed"
    Ready = "Ready"
    """kstatus: the stage succeeded (for a DifficultyBank: the bank can be sampled from)."""
    Reconciling = "Reconciling"
    """kstatus: the operator is working toward the spec (waiting, queued, starting, running)."""
    Stalled = "Stalled"
    """kstatus: no progress without a person (the same failure as Failed)."""


class Phase(str, Enum):
    """One word summarising the conditions, for `kubectl get`."""

    Pending = "Pending"
    WaitingForInputs = "WaitingForInputs"
    Queued = "Queued"
    Running = "Running"
    Succeeded = "Succeeded"
    Failed = "Failed"
    Suspended = "Suspended"
    Ready = "Ready"


class Condition(ApiModel):
    """A condition in the standard Kubernetes shape."""

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase machine-readable reason, e.g. WaitingForInput.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(
        description="When status last changed (not when it was last checked)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class Progress(ApiModel):
    """Work done so far, reported by the stage while it runs."""

    done: int = Field(default=0, ge=0, description="Items finished (questions, samples or steps).")
    total: int | None = Field(default=None, ge=0, description="Items in all; unknown before inputs are read.")
    percent: float | None = Field(default=None, ge=0, le=100, description="done / total in percent.")
    rate: float | None = Field(default=None, ge=0, description="Items per second, recent average.")
    eta_seconds: float | None = Field(default=None, ge=0, description="Estimated seconds left.")


class StageMetrics(ApiModel):
    """The stage's short summary (from the pod's termination message); fields a stage does not have
    stay empty."""

    records: int | None = Field(default=None, ge=0, description="Records read from the inputs.")
    quarantined: int | None = Field(default=None, ge=0, description="Bad input rows set aside.")
    accuracy: float | None = Field(default=None, ge=0, le=1, description="Share of questions solved.")
    level_counts: dict[str, int] = Field(
        default_factory=dict, description="Questions per difficulty level (0 easy … 5 hardest)."
    )
    generated: int | None = Field(default=None, ge=0, description="Teacher completions generated.")
    kept: int | None = Field(default=None, ge=0, description="Samples kept after verification and filters.")
    tokens: int | None = Field(default=None, ge=0, description="Tokens generated (or trained on, for SFT).")
    requests: int | None = Field(default=None, ge=0, description="Requests sent to an endpoint.")
    loss: float | None = Field(default=None, description="Final training loss (SFT).")


class OutputStatus(ApiModel):
    """Where the artifact is and what it holds (copied from its MANIFEST.json)."""

    claim: str | None = Field(default=None, description="PersistentVolumeClaim holding the artifact.")
    path: str | None = Field(default=None, description="Artifact directory inside the claim (or on disk).")
    records: int | None = Field(default=None, ge=0, description="Records in the artifact.")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of MANIFEST.json."
    )


class ResourceStatus(ApiModel):
    """The part of status every kind shares."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="Last metadata.generation the operator acted on."
    )
    phase: Phase | None = Field(default=None, description="Summary of the conditions.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current conditions, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: datetime | None = Field(default=None, description="When the first Job started.")
    completion_time: datetime | None = Field(default=None, description="When the stage completed.")
    progress: Progress | None = Field(default=None, description="Work done so far.")
    metrics: StageMetrics | None = Field(default=None, description="The stage's summary figures.")
    output: OutputStatus | None = Field(default=None, description="The written artifact.")

    def condition(self, type_: ConditionType) -> Condition | None:
        """The condition of this type, if set."""
        return next((c for c in self.conditions if c.type == type_), None)


class GradingRunStatus(ResourceStatus):
    """Status of a GradingRun."""

    distribution: dict[str, float] = Field(
        default_factory=dict,
        description="Share of questions per level (P_eval when the run grades an evaluation set).",
    )
    unverifiable: int | None = Field(
        default=None,
        ge=0,
        description="Questions whose reference answer or tests could not be used; reported, not graded.",
    )
    truncated: int | None = Field(
        default=None,
        ge=0,
        description="Questions with at least one answer cut off by sampling.maxTokens "
        "(graded as grader.truncated says).",
    )
    prm_truncated: int | None = Field(
        default=None,
        ge=0,
        description="Questions with an answer longer than the PRM's context (scored on the steps that "
        "fit, or left out, as grader.prm.onOverflow says).",
    )


class DifficultyBankStatus(ResourceStatus):
    """Status of a DifficultyBank."""

    model: str | None = Field(default=None, description="Identity of the model the bank is graded for.")
    questions: int | None = Field(default=None, ge=0, description="Questions in the bank.")
    duplicates_removed: int | None = Field(default=None, ge=0, description="Questions dropped as duplicates.")
    contaminated_removed: int | None = Field(
        default=None, ge=0, description="Questions dropped by decontamination."
    )
    cut_points: list[float | None] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="Cut points c1..c4 the unsolved questions were re-levelled with (levels.cutPointsFrom; "
        "null: a level no score reached when they were fitted); unset when the sources' levels were kept.",
    )
    cut_points_from: str | None = Field(default=None, description="The GradingRun the cut points came from.")


class DistillationJobStatus(ResourceStatus):
    """Status of a DistillationJob."""

    target_distribution: dict[str, float] = Field(default_factory=dict, description="Level shares asked for.")
    achieved_distribution: dict[str, float] = Field(
        default_factory=dict, description="Level shares of the kept samples."
    )
    shortfall: dict[str, int] = Field(
        default_factory=dict,
        description="Per level, questions missing from the bank and redistributed to neighbouring levels.",
    )
    acceptance_rate: float | None = Field(default=None, ge=0, le=1, description="Kept / sampled questions.")


class EvaluationResult(ApiModel):
    """One benchmark score before and after training."""

    name: str = Field(description="Benchmark name.")
    metric: str = Field(default="accuracy", description="accuracy, or pass@k for k > 1.")
    before: float | None = Field(default=None, ge=0, le=1, description="Score of the base model.")
    after: float | None = Field(default=None, ge=0, le=1, description="Score of the trained model.")


class SFTJobStatus(ResourceStatus):
    """Status of an SFTJob."""

    checkpoint: str | None = Field(default=None, description="Last checkpoint directory written.")
    restarts: int | None = Field(
        default=None,
        ge=0,
        description="Gang restarts of a multi-node run: times every node was restarted together, from the "
        "last checkpoint, after one of them failed (spec.backoffLimit is the budget).",
    )
    last_restart_reason: str | None = Field(
        default=None,
        description="Why the last gang restart happened: the failing node (rank), its pod and reason.",
    )
    evaluation: list[EvaluationResult] = Field(default_factory=list, description="Benchmark results.")
