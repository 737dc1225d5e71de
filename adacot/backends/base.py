"""The interfaces every generation and step-scoring engine implements.

Callers: the grading and distillation stages (through `Generator`), the PRM-Grader (through
`StepScorer`). Implementations: backends.vllm (offline engine), backends.openai_http (any
OpenAI-compatible server), backends.hf (transformers `generate`), backends.prm (PRMs). Unit tests use a
scripted implementation; integration tests use the real engines on tiny local models.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from adacot.api.generation import SamplingSpec
from adacot.artifacts.manifest import Counters

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class Prompt:
    """One request: chat `messages` (rendered with the model's chat template or sent to a chat endpoint)
    or a plain `text` prompt (sent as is). Exactly one of them is set."""

    messages: tuple[tuple[str, str], ...] = ()
    """(role, content) pairs."""
    text: str | None = None
    seed: int | None = None
    """Sampling seed of this prompt (e.g. derived from the question id so shards agree); None means
    `SamplingSpec.seed`."""

    def __post_init__(self) -> None:
        if bool(self.messages) == (self.text is not None):
            raise ValueError("a Prompt has either messages or text, not both and not neither")

    @classmethod
    def chat(cls, user: str, system: str | None = None) -> Prompt:
        turns = ((("system", system),) if system else ()) + (("user", user),)
        return cls(messages=turns)


@dataclass(frozen=True)
class Sample:
    """One generated completion. `finish_reason` "length" means truncated; "error" means the request
    failed for good after its retries (then `error` says why and `text` is empty)."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning: str | None = None
    """Separate reasoning (`reasoning_content` of R1-style servers), when the server returns it."""
    latency_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Completion:
    """The n samples of one prompt, identified by its index in the request sequence."""

    index: int
    samples: tuple[Sample, ...]
    usage: UsageCounter | None = None
    """What this prompt alone cost (requests, retries, tokens), when the generator counts per prompt;
    stages store it with the prompt's record, so a manifest sums exactly what was written."""


@dataclass
class UsageCounter(Counters):
    """Totals a generator accumulates; stages copy them into the manifest."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Generates `sampling.samples_per_question` samples per prompt."""

    usage: UsageCounter

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        """Yield one Completion per prompt as soon as it is done, in any order; every prompt index is
        yielded exactly once (a prompt that failed for good yields samples with finish_reason "error")."""
        ...

    def close(self) -> None:
        """Release the engine (processes, GPU memory, connections)."""
        ...


@runtime_checkable
class StreamingGenerator(Generator, Protocol):
    """A generator that takes its prompts as they come (continuous dispatch: a server's slots are
    refilled as soon as an answer arrives, and a caller adds follow-up prompts while earlier ones are
    still in flight). Implemented by the HTTP backend; offline engines batch instead."""

    def stream(self, prompts: Iterable[Prompt], sampling: SamplingSpec) -> Iterator[list[Completion]]:
        """Yield the completions that are ready, in batches of one or more (every one that has arrived
        since the last batch), until `prompts` is exhausted and each prompt was answered exactly once.
        `prompts` may block (a queue the caller feeds while it consumes); Completion.index is a
        prompt's position in the order `prompts` gave it."""
        ...


@dataclass(frozen=True)
class StepScores:
    """Scores in [0, 1] of the steps of one trace; `truncated` when the trace was cut to fit the PRM's
    context (the scores then cover only the steps that fitted)."""

    scores: tuple[float, ...]
    truncated: bool = False
    error: str | None = None
    """Why the trace has no scores although it has steps (an LLM judge whose reply could not be parsed,
    twice); such a trace is reported unscored, never given a made-up score."""


@runtime_checkable
class StepScorer(Protocol):
    """Scores the reasoning steps of traces: item = (question, steps of one answer)."""

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[StepScores]:
        """One StepScores per item, in order."""
        ...

    def close(self) -> None: ...


@dataclass
class PrmUsage(Counters):
    """Totals a PRM accumulates; the grading stage copies them into its manifest."""

    traces: int = 0
    steps_scored: int = 0
    truncated_traces: int = 0
    steps_dropped: int = 0
    unscored_traces: int = 0
    """Traces with steps but no scores (an unparseable judge reply)."""
    retries: int = 0
