"""Record types along the flow: question, attempt, graded question, bank entry, CoT trace, SFT example.

Every stage reads and writes these and nothing else; `jsonio` turns them into JSONL lines or Parquet rows.
Field names are snake_case on disk (these are data files, not Kubernetes objects), unknown fields are
rejected so that a file written by another version fails loudly instead of losing data.

Each record has a `key`: the identity the append log and the merge step use to skip work already done
and to order the final files. For per-question records it is the question id; for records of which a
question can have several (attempts, traces) the sample/attempt number is appended.

Limits: the records carry no provenance of their own; the artifact's MANIFEST.json holds spec, seed and
versions for all of them.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adacot.api.common import TaskType

#: Levels run 0 (solved, easy) to 5 (hardest unsolved); a higher number is always harder.
MIN_LEVEL = 0
MAX_LEVEL = 5

#: Hex digits kept of the sha256 in generated question ids: 64 bits, collision-free at any dataset size
#: this service will see, short enough to read in logs.
QUESTION_ID_HEX = 16


def question_id(problem_text: str, source: str) -> str:
    """A stable id for a question whose dataset has no id field.

    The problem text is NFC-normalised and its whitespace runs collapsed before hashing, so re-exporting a
    dataset (CRLF line ends, trailing spaces) keeps every id. Two questions differing only in whitespace
    get the same id, which the dataset loader reports as a duplicate - they are the same question.
    """
    normalised = " ".join(unicodedata.normalize("NFC", problem_text).split())
    digest = hashlib.sha256(f"{source}\x00{normalised}".encode()).hexdigest()
    return digest[:QUESTION_ID_HEX]


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


class Record(BaseModel):
    """Base of every record: unknown fields are an error, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    @property
    def key(self) -> str:
        """Identity used for resume and for the order of merged files."""
        raise NotImplementedError(f"{type(self).__name__} has no key")


class QuarantinedRow(Record):
    """An input row set aside under `onBadRow: quarantine`, written to the artifact's quarantine.jsonl."""

    file: str
    """The file the row came from."""
    line: int | None = None
    """1-based line (JSONL) or 0-based row index (Parquet, Arrow); see `row_kind`."""
    row_kind: Literal["line", "row"] = "line"
    """Whether `line` is a JSONL line number or a table row index."""
    reason: str
    """What was wrong, in the same words the fail policy would raise."""
    raw: str
    """The row as read (text for JSONL, JSON for table rows), capped at 64 KiB."""

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}"


class Question(Record):
    """One question as loaded from a dataset: what the student and the teacher are asked."""

    id: str = Field(min_length=1)
    """Stable id: the dataset's id field, or `question_id(problem, source)`."""
    task: TaskType
    """math (final answer checked) or code (program run against tests)."""
    problem: str = Field(min_length=1)
    """The question text as given to the model."""
    answer: str | None = None
    """Reference answer; required for math."""
    tests: dict[str, Any] | None = None
    """Raw test description for the code verifier (function-call or stdin/stdout form); required for code."""
    source: str = Field(min_length=1)
    """Dataset name or sub-source (topic), used for balancing and reporting."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """The row's remaining (unmapped) fields, kept verbatim."""

    @model_validator(mode="after")
    def _reference_for_task(self) -> Question:
        if self.task is TaskType.math and not self.answer:
            raise ValueError(f"question {self.id}: task math needs a reference answer")
        if self.task is TaskType.code and self.tests is None:
            raise ValueError(f"question {self.id}: task code needs tests")
        return self

    @property
    def key(self) -> str:
        return self.id


class Attempt(Record):
    """One sampled response of a model to a question, its verdict and (under a PRM) its step scores."""

    question_id: str = Field(min_length=1)
    sample: int = Field(ge=0)
    """0-based index among the k samples drawn for the question."""
    text: str
    """The full response text."""
    reasoning: str | None = None
    """Separate reasoning channel when the server returns one (`reasoning_content`)."""
    finish_reason: str | None = None
    """stop, length, ... as the backend reports it; length means truncated."""
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    latency_s: float | None = Field(default=None, ge=0)
    """Wall time of the request (HTTP) or the batch share (offline engines)."""
    verdict: Verdict | None = None
    """The Result-Verifier's decision; None until verified."""
    step_scores: list[float] | None = None
    """PRM score of each reasoning step, in [0, 1]."""
    score: float | None = None
    """Aggregated step score (or share of tests passed for code without a PRM)."""
    prm_truncated: bool | None = None
    """The trace was longer than the PRM's context: only the steps that fitted were scored (and, under
    onOverflow skip, the trace left out of the question's score). None when no PRM scored it."""

    @property
    def key(self) -> str:
        return f"{self.question_id}#{self.sample}"

    @property
    def truncated(self) -> bool:
        """Cut off by max tokens (finish reason length): the model did not finish this answer."""
        return self.finish_reason == "length"


class GradedQuestion(Record):
    """A question with the base model's attempts and the difficulty level they imply.

    An ungradable question (its reference does not parse, every verdict undecided) has no level and says
    why in `reason`; stages report such questions instead of guessing a level.
    """

    question: Question
    attempts: list[Attempt] = Field(default_factory=list)
    pass_rate: float | None = Field(default=None, ge=0, le=1)
    solved: bool | None = None
    score: float | None = None
    """Aggregated PRM (or fallback) score over the attempts; None for solved questions when not scored."""
    level: int | None = Field(default=None, ge=MIN_LEVEL, le=MAX_LEVEL)
    """0 = solved (easy), 1..5 = unsolved, 5 hardest."""
    reason: str | None = None
    """Why the question has no level (ungradable)."""
    truncated: int | None = None
    """Attempts cut off by max tokens, dropped ones included (grader.truncated); None in older files."""
    prm_truncated: bool | None = None
    """A scored trace was longer than the PRM's context; None when no PRM scored this question."""
    usage: dict[str, int] | None = None
    """The generator's calls for this question (requests, retries, failures, prompt and completion
    tokens), when it counts per prompt (the HTTP backend); the manifest's usage is then their sum, so it
    covers exactly the records written, also after a kill and resume."""

    @model_validator(mode="after")
    def _level_or_reason(self) -> GradedQuestion:
        if self.level is None and not self.reason:
            raise ValueError(f"graded question {self.question.id}: no level and no reason why")
        return self

    @property
    def key(self) -> str:
        return self.question.id


class BankEntry(Record):
    """A graded question in a DifficultyBank: the unit distillation samples from."""

    question: Question
    level: int = Field(ge=MIN_LEVEL, le=MAX_LEVEL)
    score: float | None = None
    pass_rate: float | None = Field(default=None, ge=0, le=1)
    model: str = Field(min_length=1)
    """The base model the level was measured for (difficulty is per model)."""
    origin: str = Field(min_length=1)
    """The grading run (namespace/name or path) this entry came from."""
    truncated: int | None = None
    """Attempts of the grading cut off by max tokens (GradedQuestion.truncated); None when not recorded."""
    prm_truncated: bool | None = None
    """A trace of its grading was longer than the PRM's context (GradedQuestion.prm_truncated)."""

    @property
    def key(self) -> str:
        return self.question.id


class CotTrace(Record):
    """One teacher chain of thought for a sampled question, verified."""

    question_id: str = Field(min_length=1)
    level: int | None = Field(default=None, ge=MIN_LEVEL, le=MAX_LEVEL)
    source: str
    prompt: str
    """The user prompt sent to the teacher (after the per-task instruction)."""
    reasoning: str
    """The teacher's reasoning, without the think tags."""
    answer: str
    """The part after the reasoning: the final solution text."""
    text: str
    """R1 format: `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` - what the student is trained on."""
    verdict: Verdict
    attempt: int = Field(ge=1)
    """1-based attempt number for this question."""
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    latency_s: float | None = Field(default=None, ge=0)
    finish_reason: str | None = None

    @property
    def key(self) -> str:
        return f"{self.question_id}#{self.attempt}"


class Message(Record):
    """One chat turn in TRL's conversational form."""

    role: Literal["system", "user", "assistant"]
    content: str


class SftExample(Record):
    """One supervised fine-tuning example: `{"messages": [...]}` as TRL's SFTTrainer reads it, plus origin."""

    messages: list[Message] = Field(min_length=2)
    question_id: str = Field(min_length=1)
    level: int | None = Field(default=None, ge=MIN_LEVEL, le=MAX_LEVEL)
    source: str

    @model_validator(mode="after")
    def _ends_with_assistant(self) -> SftExample:
        if self.messages[-1].role != "assistant":
            raise ValueError(f"SFT example {self.question_id}: the last message must be the assistant's")
        return self

    @property
    def key(self) -> str:
        return self.question_id


class DistilledQuestion(Record):
    """What happened to one sampled question: every teacher sample, its outcome, and the kept CoT."""

    question_id: str = Field(min_length=1)
    level: int | None = Field(default=None, ge=MIN_LEVEL, le=MAX_LEVEL)
    source: str
    origin: str = ""
    """The grading run the bank entry came from."""
    prompt: str
    """The user prompt sent to the teacher."""
    rounds: int = Field(ge=0)
    attempts: list[Attempt] = Field(default_factory=list)
    """Every sample, in order (Attempt.sample is the 0-based number across rounds)."""
    outcomes: list[str] = Field(default_factory=list)
    """One per attempt: kept, correct_not_kept, wrong:<reason>, undecided:<reason>, truncated, ..."""
    kept: list[CotTrace] = Field(default_factory=list)
    usage: dict[str, int] | None = None
    """The teacher's calls for this question over its rounds (requests, retries, failures, prompt and
    completion tokens), when the teacher counts per prompt (the HTTP backend); the manifest's usage is
    their sum, so it covers exactly the records written, also after a kill and resume."""

    @property
    def key(self) -> str:
        return self.question_id

    @property
    def accepted(self) -> bool:
        return bool(self.kept)


class LossPoint(BaseModel):
    """One logged training loss."""

    step: int
    loss: float
    epoch: float | None = None
    learning_rate: float | None = None
