"""DistillationJob: sample N questions from a bank by a difficulty distribution, have a teacher write
chain-of-thought for each, keep the verified ones.

Read by the sampling and distillation stages, the operator and the CRD generator. Level 0 (easy) in the
three distributions: fromGradingRun and table include it unless excludeEasy is set; prior weights cover
levels 1..5 ("five weights, strictly decreasing towards the harder levels") and level 0 gets easyWeight
(0 by default). In the paper's words the prior puts more weight on the questions the model finds easier
among those it cannot yet solve. Limits: whether the bank actually has the levels asked for is known
only at run time (the stage reports or fails by `shortfall`; levels with share 0 never receive draws).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from adacot.api.common import ApiModel, DecontaminationSpec, LocalObjectReference, ModelSpec
from adacot.api.generation import Endpoint, PromptSpec, SamplingSpec, VerificationSpec, VllmOptions
from adacot.api.resource import Resource, phase_columns
from adacot.api.rules import cel, check_one_of, immutable, one_of_rule, validations
from adacot.api.status import DistillationJobStatus
from adacot.api.workload import SCHEDULING_WHILE_SUSPENDED, CommonSpec, Resources, Shards

LEVELS = ("0", "1", "2", "3", "4", "5")
WEIGHTS_MESSAGE = "distribution.prior.weights must be strictly decreasing (level 1 weighs most)"
TABLE_KEYS_MESSAGE = "distribution.table keys must be levels 0 to 5"
TABLE_ZERO_MESSAGE = "distribution.table needs at least one positive share"

Weight = Annotated[float, Field(ge=0)]


class PriorSpec(ApiModel):
    """P_prior: curriculum weights over the unsolved levels 1..5."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                # double(): YAML gives ints where people write 5, and CEL does not compare int with double.
                "!has(self.weights) || "
                + " && ".join(f"double(self.weights[{i}]) > double(self.weights[{i + 1}])" for i in range(4)),
                WEIGHTS_MESSAGE,
            )
        )
    )

    weights: list[Weight] = Field(
        default=[5.0, 4.0, 3.0, 2.0, 1.0],
        min_length=5,
        max_length=5,
        description="Weights of levels 1..5, non-negative, strictly decreasing; normalised to shares.",
    )
    easy_weight: Weight = Field(default=0.0, description="Weight of level 0 (solved questions).")

    @model_validator(mode="after")
    def _decreasing(self) -> PriorSpec:
        if any(a <= b for a, b in zip(self.weights, self.weights[1:], strict=False)):
            raise ValueError(WEIGHTS_MESSAGE)
        return self


class DistributionSpec(ApiModel):
    """The target share of each level among the N sampled questions."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            one_of_rule(("fromGradingRun", "prior", "table"), "distribution"),
            cel(
                "!has(self.table) || self.table.all(k, k in ['0', '1', '2', '3', '4', '5'])",
                TABLE_KEYS_MESSAGE,
            ),
            cel("!has(self.table) || self.table.exists(k, double(self.table[k]) > 0.0)", TABLE_ZERO_MESSAGE),
        )
    )

    from_grading_run: LocalObjectReference | None = Field(
        default=None,
        description="P_eval: the level shares of this GradingRun (S graded on an evaluation set).",
    )
    prior: PriorSpec | None = Field(default=None, description="P_prior: curriculum weights.")
    table: dict[str, Weight] | None = Field(
        default=None, description="Explicit weights per level, e.g. {1: 3, 2: 2, 3: 1}; normalised to shares."
    )
    exclude_easy: bool = Field(
        default=False,
        description="Give level 0 share 0 and renormalise: it never receives draws, even to keep N.",
    )

    @field_validator("table", mode="before")
    @classmethod
    def _level_keys_as_strings(cls, value: Any) -> Any:
        # YAML reads `1: 0.3` with an integer key; the API server's YAML-to-JSON step makes it "1".
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _valid_choice(self) -> DistributionSpec:
        check_one_of(self, ("fromGradingRun", "prior", "table"), "distribution")
        if self.table is not None:
            if any(k not in LEVELS for k in self.table):
                raise ValueError(TABLE_KEYS_MESSAGE)
            if not any(v > 0 for v in self.table.values()):
                raise ValueError(TABLE_ZERO_MESSAGE)
        return self


class TeacherServer(ApiModel):
    """A vLLM OpenAI-compatible server the stage starts in its pod (for smaller teachers)."""

    model: ModelSpec = Field(description="The teacher model.")
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="Server engine settings.")
    port: int = Field(default=8000, ge=1024, le=65535, description="Local port of the server.")
    startup_timeout_seconds: float = Field(
        default=1800, gt=0, description="Time allowed to load and pass the health check."
    )


def _teacher_sampling() -> SamplingSpec:
    return SamplingSpec(max_tokens=32768)


class TeacherSpec(ApiModel):
    """The model writing chains of thought (DeepSeek-R1 class), assembled as <think>…</think> + answer."""

    model_config = ConfigDict(json_schema_extra=validations(one_of_rule(("endpoint", "server"), "teacher")))

    endpoint: Endpoint | None = Field(default=None, description="An OpenAI-compatible endpoint.")
    server: TeacherServer | None = Field(default=None, description="Start vLLM in the pod instead.")
    sampling: SamplingSpec = Field(
        default_factory=_teacher_sampling, description="Decoding (R1 defaults: temperature 0.6, top_p 0.95)."
    )
    prompt: PromptSpec = Field(default_factory=PromptSpec, description="Prompt construction.")
    max_attempts: int = Field(
        default=4, ge=1, le=64, description="Generations per question until one verifies."
    )
    keep: Literal["first", "shortest", "all"] = Field(
        default="first", description="Which correct CoT of a question to keep."
    )

    @model_validator(mode="after")
    def _one_teacher(self) -> TeacherSpec:
        check_one_of(self, ("endpoint", "server"), "teacher")
        return self


class FilterSpec(ApiModel):
    """What is dropped besides wrong answers (truncated outputs are never kept)."""

    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Drop CoT longer than this many tokens; set it to the SFT maxSeqLength.",
    )
    require_reasoning: bool = Field(default=True, description="Drop outputs without a reasoning part.")


class DistillationJobSpec(CommonSpec):
    """Build S's training set: sample, distil, verify, filter, decontaminate."""

    model_config = ConfigDict(json_schema_extra=validations(SCHEDULING_WHILE_SUSPENDED))

    bank_ref: LocalObjectReference = Field(
        description="The DifficultyBank to sample from.", json_schema_extra=immutable("bankRef")
    )
    distribution: DistributionSpec = Field(
        description="Target level shares.", json_schema_extra=immutable("distribution")
    )
    size: int = Field(
        default=2000,
        ge=1,
        le=10_000_000,
        description="N, questions to sample (the paper uses about 2k).",
        json_schema_extra=immutable("size"),
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed.", json_schema_extra=immutable("seed"))
    shortfall: Literal["redistribute", "fail"] = Field(
        default="redistribute",
        description="When a level has too few questions: move the missing count to the nearest "
        "levels with a share (reported in status), or fail. Levels with share 0 never receive draws.",
    )
    balance_by: Literal["none", "source"] = Field(
        default="none", description="Also balance the sample across sources/topics within each level."
    )
    teacher: TeacherSpec = Field(description="The teacher.")
    verification: VerificationSpec = Field(default_factory=VerificationSpec, description="Verifier limits.")
    filter: FilterSpec = Field(default_factory=FilterSpec, description="Extra filters.")
    decontamination: DecontaminationSpec | None = Field(
        default=None, description="Drop bank questions overlapping evaluation benchmarks before sampling."
    )
    exports: list[Literal["sharegpt", "alpaca"]] = Field(
        default_factory=list, description="Extra formats besides TRL's messages format (LLaMA-Factory)."
    )
    shards: Shards = 1
    resources: Resources = Field(
        default_factory=Resources,
        description="Compute per pod; an in-pod teacher server needs GPUs.",
    )


class DistillationJob(Resource[DistillationJobSpec, DistillationJobStatus]):
    """Distils verified chain-of-thought for questions sampled to the model's difficulty."""

    KIND: ClassVar[str] = "DistillationJob"
    PLURAL: ClassVar[str] = "distillationjobs"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("dj", "distill")
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = phase_columns(
        {
            "name": "Kept",
            "type": "integer",
            "jsonPath": ".status.metrics.kept",
            "description": "Verified samples kept.",
        },
    )

    kind: Literal["DistillationJob"] = Field(default="DistillationJob", description="DistillationJob.")

    def references(self) -> list[tuple[str, str]]:
        refs = [("DifficultyBank", self.spec.bank_ref.name)]
        if self.spec.distribution.from_grading_run is not None:
            refs.append(("GradingRun", self.spec.distribution.from_grading_run.name))
        return refs
