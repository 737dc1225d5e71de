"""GradingRun: the base model S answers a question pool and every question gets a difficulty level.

Read by the grading stage (adacot.stages.grade through adacot.pipelines), the operator and the CRD
generator. Levels: 0 = solved (easy); unsolved questions get 1..5 from a score in [0, 1] where a HIGHER
LEVEL IS ALWAYS HARDER. The paper says "a lower PRM score means a harder question"; here the score is
mapped so that the highest-scoring unsolved questions (closest to right) are level 1 and the lowest level
5. Limits: cross-object checks (does the bank exist, is the model readable) happen in the stage and the
operator, not here.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from adacot.api.common import ApiModel, DatasetSpec, LocalObjectReference, ModelSpec
from adacot.api.generation import Endpoint, InferenceSpec, PromptSpec, SamplingSpec, VerificationSpec
from adacot.api.resource import Resource, phase_columns
from adacot.api.rules import cel, immutable, is_value, validations
from adacot.api.status import GradingRunStatus
from adacot.api.workload import SCHEDULING_WHILE_SUSPENDED as _SCHEDULING
from adacot.api.workload import CommonSpec, Shards

PRM_SOURCE_MESSAGE = (
    "grader.prm: llmJudge needs endpoint (and no model); other kinds need model (and no endpoint)"
)
PRM_SYSTEM_MESSAGE = (
    "grader.prm.systemPrompt: the languageModel (Math-Shepherd) input has no system message; "
    "use kind discriminative or llmJudge"
)


class PrmSpec(ApiModel):
    """The PRM-Grader: scores each reasoning step of an unsolved answer in [0, 1]."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                f"{is_value('kind', 'llmJudge')} ? (has(self.endpoint) && !has(self.model)) "
                ": (has(self.model) && !has(self.endpoint))",
                PRM_SOURCE_MESSAGE,
            ),
            cel(f"!has(self.systemPrompt) || !{is_value('kind', 'languageModel')}", PRM_SYSTEM_MESSAGE),
        )
    )

    kind: Literal["discriminative", "languageModel", "llmJudge"] = Field(
        default="discriminative",
        description="discriminative: Qwen2.5-Math-PRM convention (positive-class "
        "probability at a separator after each step); languageModel: Math-Shepherd convention (probability "
        "of '+' at each step tag); llmJudge: a model behind endpoint rates each step.",
    )
    model: ModelSpec | None = Field(
        default=None, description="The PRM weights (discriminative, languageModel)."
    )
    endpoint: Endpoint | None = Field(default=None, description="The judge (llmJudge).")
    step_split: Literal["blankLines", "newlines", "tag"] = Field(
        default="blankLines", description="How a response is cut into steps."
    )
    step_tag: str = Field(
        default="ки",
        min_length=1,
        description="Step marker for stepSplit tag and for the "
        "languageModel convention (Math-Shepherd uses 'ки').",
    )
    aggregation: Literal["min", "mean", "last", "product"] = Field(
        default="min", description="Step scores to one score; min follows Qwen2.5-Math-PRM practice."
    )
    sample_aggregation: Literal["mean", "min", "max"] = Field(
        default="mean", description="Scores of a question's k unsolved samples to one score."
    )
    system_prompt: str | None = Field(
        default=None,
        description="System message of the PRM's input (discriminative) or of the judge (llmJudge). "
        "Default per questions.task: math uses Qwen2.5-Math-PRM's own ('Please reason step by step, and "
        "put your final answer within \\boxed{}.'), code a prompt that asks for a Python solution in a "
        "code block; the empty string sends none. Not for languageModel, whose input has no system turn.",
    )
    max_tokens: int = Field(
        default=8192,
        ge=16,
        description="Context of the PRM in tokens; the model's maxModelLen and the checkpoint's "
        "max_position_embeddings lower it. A longer trace is cut from the end (see onOverflow).",
    )
    on_overflow: Literal["truncate", "skip"] = Field(
        default="truncate",
        description="A trace longer than the PRM's context: truncate (default) scores the steps "
        "that fit and aggregates over them (a causal PRM gives them the scores it would give in the whole "
        "trace); skip leaves the trace out of its question's score (a question with no other scored "
        "trace is not graded). Either way the attempt and the question are flagged prmTruncated and "
        "counted in status.prmTruncated.",
    )
    batch_size: int = Field(default=8, ge=1, description="Traces scored per forward pass.")

    @model_validator(mode="after")
    def _source_matches_kind(self) -> PrmSpec:
        judge = self.kind == "llmJudge"
        has_right = (self.endpoint is not None) if judge else (self.model is not None)
        has_wrong = (self.model is not None) if judge else (self.endpoint is not None)
        if not has_right or has_wrong:
            raise ValueError(PRM_SOURCE_MESSAGE)
        if self.system_prompt is not None and self.kind == "languageModel":
            raise ValueError(PRM_SYSTEM_MESSAGE)
        return self


CutPoint = Annotated[float, Field(gt=0, lt=1)]
CUTS_MESSAGE = "grader.levels.cutPoints must be strictly increasing"


class LevelMapping(ApiModel):
    """Score in [0, 1] to levels 1..5 (5 hardest): four cut points c1 < c2 < c3 < c4.

    bins: score >= c4 is level 1, [c3, c4) level 2, ..., < c1 level 5.
    quantiles: the cut points are fitted to this run's unsolved scores instead (five equal groups) and
    recorded in its summary (`cut_points`), so a bank can freeze them (DifficultyBank levels.cutPointsFrom).
    """

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.cutPoints) || (self.cutPoints[0] < self.cutPoints[1] "
                "&& self.cutPoints[1] < self.cutPoints[2] && self.cutPoints[2] < self.cutPoints[3])",
                CUTS_MESSAGE,
            )
        )
    )

    mode: Literal["bins", "quantiles"] = Field(
        default="bins",
        description="bins (default) uses the fixed cutPoints, so a pool and an evaluation set graded "
        "separately share one scale (needed for P_eval); quantiles fits the cut points to this run's "
        "unsolved scores (five equal groups) and records them, for a DifficultyBank whose "
        "levels.cutPointsFrom names this run to re-level its questions on the same scale.",
    )
    cut_points: list[CutPoint] = Field(
        default=[0.2, 0.4, 0.6, 0.8],
        min_length=4,
        max_length=4,
        description="Four increasing cut points in (0, 1) (mode bins).",
    )

    @model_validator(mode="after")
    def _increasing(self) -> LevelMapping:
        if any(a >= b for a, b in zip(self.cut_points, self.cut_points[1:], strict=False)):
            raise ValueError(CUTS_MESSAGE)
        return self


class GraderSpec(ApiModel):
    """How a question's answers become its level."""

    method: Literal["prm", "passRate"] = Field(
        default="prm",
        description="prm: unsolved questions are scored by the PRM (the paper's method); "
        "passRate: the score is the share of the k samples that are correct (s1, LIMO, Light-R1, open-r1). "
        "For code without a PRM the share of tests passed is the score.",
    )
    solved_rule: Literal["any", "majority", "threshold"] = Field(
        default="any",
        description="When a question counts as solved (level 0): any sample correct, a "
        "majority, or a pass rate of at least solvedThreshold.",
    )
    solved_threshold: float = Field(
        default=0.5, gt=0, le=1, description="Pass rate for solvedRule threshold."
    )
    prm: PrmSpec | None = Field(default=None, description="The PRM (method prm; optional for code).")
    truncated: Literal["scored", "hardest", "drop"] = Field(
        default="hardest",
        description="How an attempt cut off by sampling.maxTokens (finish reason length) grades. "
        "hardest (default): an unsolved question with such an attempt is level 5 - a long-CoT model that "
        "runs out of tokens could not finish, the strongest sign of difficulty, while a PRM would score "
        "only the steps it wrote and could place it near solved. scored: graded like any wrong attempt "
        "(PRM score of its steps, or pass rate). drop: left out of the question's samples; a question "
        "with none left is not graded. A right answer still makes a question solved in every mode.",
    )
    levels: LevelMapping = Field(default_factory=LevelMapping, description="Score to level 1..5.")


class ResponsesSpec(ApiModel):
    """Pre-generated answers of S: grading verifies and scores them instead of generating."""

    path: str = Field(min_length=1, description="JSONL or Parquet file of responses.")
    id_field: str = Field(default="id", description="Field with the question id.")
    response_field: str = Field(default="response", description="Field with the model's answer.")
    finish_reason_field: str = Field(
        default="finish_reason",
        description="Optional field with each answer's finish reason (stop, length, ...: a string, or a "
        "list beside a list of answers); length marks an answer cut off by max tokens (grader.truncated).",
    )


PASS_RATE_MESSAGE = "grader.method passRate needs sampling.samplesPerQuestion of at least 2"
PRM_MESSAGE = "grader.prm is required for method prm on math questions"
_PASS_RATE = cel(
    f"!{is_value('grader.method', 'passRate')} || (has(self.sampling) "
    "&& has(self.sampling.samplesPerQuestion) && self.sampling.samplesPerQuestion >= 2)",
    PASS_RATE_MESSAGE,
)
_PRM = cel(
    f"!(!{is_value('grader.method', 'passRate')} && !{is_value('questions.task', 'code')}) "
    "|| (has(self.grader) && has(self.grader.prm))",
    PRM_MESSAGE,
)


class GradingRunSpec(CommonSpec):
    """Grade a question pool (or an evaluation set, for P_eval) by the model's own answers."""

    model_config = ConfigDict(json_schema_extra=validations(_SCHEDULING, _PASS_RATE, _PRM))

    questions: DatasetSpec = Field(
        description="The questions to grade.", json_schema_extra=immutable("questions")
    )
    model: ModelSpec = Field(
        description="The base model S being graded.", json_schema_extra=immutable("model")
    )
    inference: InferenceSpec = Field(default_factory=InferenceSpec, description="How S generates.")
    prompt: PromptSpec = Field(default_factory=PromptSpec, description="Prompt construction.")
    sampling: SamplingSpec = Field(
        default_factory=SamplingSpec,
        description="Decoding; samplesPerQuestion is k.",
        json_schema_extra=immutable("sampling"),
    )
    responses: ResponsesSpec | None = Field(
        default=None,
        description="Grade these answers instead of generating.",
        json_schema_extra=immutable("responses"),
    )
    verification: VerificationSpec = Field(default_factory=VerificationSpec, description="Verifier limits.")
    grader: GraderSpec = Field(
        default_factory=GraderSpec, description="Level assignment.", json_schema_extra=immutable("grader")
    )
    shards: Shards = 1
    bank_ref: LocalObjectReference | None = Field(
        default=None,
        description="The DifficultyBank this run feeds (the bank waits for it; not an input of this run).",
    )

    @model_validator(mode="after")
    def _grader_fits(self) -> GradingRunSpec:
        if self.grader.method == "passRate" and self.sampling.samples_per_question < 2:
            raise ValueError(PASS_RATE_MESSAGE)
        if self.grader.method == "prm" and self.grader.prm is None and self.questions.task.value == "math":
            raise ValueError(PRM_MESSAGE)
        return self


class GradingRun(Resource[GradingRunSpec, GradingRunStatus]):
    """Grades questions by how the base model answers them."""

    KIND: ClassVar[str] = "GradingRun"
    PLURAL: ClassVar[str] = "gradingruns"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gr",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = phase_columns(
        {
            "name": "Accuracy",
            "type": "number",
            "jsonPath": ".status.metrics.accuracy",
            "description": "Share of questions solved.",
        },
    )

    kind: Literal["GradingRun"] = Field(default="GradingRun", description="GradingRun.")
