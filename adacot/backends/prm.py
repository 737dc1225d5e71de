"""Process reward models behind the `StepScorer` interface: each reasoning step of a trace gets a score
in [0, 1] ("how likely is the solution still right after this step").

Callers: the grading stage, through `make_step_scorer(spec.grader.prm)`. Implementations:

- `DiscriminativePRM` (Qwen2.5-Math-PRM convention): the conversation (system, user = question,
  assistant = every step followed by the separator token "<extra_0>") goes through a 2-label
  token-classification head; a step's score is softmax(logits)[positive label] at its separator.
- `LanguageModelPRM` (Math-Shepherd convention): "question step1 ки\\nstep2 ки…" through a causal LM; a
  step's score is P("+") / (P("+") + P("-")) from the next-token logits at its tag.
- `JudgePRM` (adacot.backends.prm_judge): an LLM rates the steps; works over any Generator.

System prompt (`prm_system_prompt`): `grader.prm.systemPrompt` when set, else one per question task -
Qwen2.5-Math-PRM's own math prompt for math, a prompt asking for a Python solution for code (a code
trace framed as a \\boxed{} answer is an input the PRM never saw; the code prompt at least states the
task the steps serve). Math-Shepherd's input has no system turn.

Batching: `batch_size` traces per forward pass, grouped by length (less padding) and right-padded.
Truncation is explicit: the context is the smallest of `max_tokens`, the spec's `max_model_len` and the
checkpoint's `max_position_embeddings` (positions past it were never trained, or do not exist). A trace
longer than that is cut there before the forward pass, steps whose marker fell beyond the cut are
dropped (the trace's StepScores has fewer scores and truncated=True) and `usage` counts the traces and
steps lost. The surviving steps' scores are what the model gives on the truncated input; for the
decoder-only PRMs used here that equals their score on the full input, because a position never sees
later tokens. What the grade does with a cut trace is grader.prm.onOverflow's (adacot.stages.grade).

Marker text inside a step (a literal "<extra_0>" or "ки") would create a phantom step; it is removed
from the step text before encoding. Tested on CPU with tiny random-weight Qwen2 models built by
adacot.testing.tiny_prm (including a trust_remote_code checkpoint shaped like Qwen2.5-Math-PRM); the real
Qwen2.5-Math-PRM-7B and math-shepherd-mistral-7b-prm weights were not available here, so their exact
token ids (e.g. Math-Shepherd's "+"/"-" with a leading-space marker) are configurable, not verified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adacot.api.common import ModelSpec, TaskType
from adacot.api.generation import Endpoint, SamplingSpec
from adacot.api.grading_run import PrmSpec
from adacot.backends.base import Generator, PrmUsage, StepScorer, StepScores
from adacot.backends.prm_judge import JUDGE_CODE_SYSTEM, JUDGE_SYSTEM

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
PRM_CODE_SYSTEM = (
    "Please reason step by step, and give your final solution as Python code in one ```python block."
)
#: Default system prompts per question task, by PRM kind (languageModel has none).
PRM_SYSTEMS = {TaskType.math: QWEN_PRM_SYSTEM, TaskType.code: PRM_CODE_SYSTEM}
JUDGE_SYSTEMS = {TaskType.math: JUDGE_SYSTEM, TaskType.code: JUDGE_CODE_SYSTEM}
QWEN_PRM_SEPARATOR = "<extra_0>"
MATH_SHEPHERD_TAG = "ки"
# ChatML, used only when the PRM's tokenizer brings no chat template of its own.
CHATML_FALLBACK = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    positions: list[int]
    steps: int


class _TokenPRM:
    """Shared machinery of the two weight-based PRMs: load, encode, truncate, batch, gather."""

    marker: str

    def __init__(self, model: ModelSpec, *, batch_size: int, max_tokens: int, device: str) -> None:
        if batch_size < 1 or max_tokens < 1:
            raise ValueError(f"PRM: batch_size and max_tokens must be >= 1 (got {batch_size}, {max_tokens})")
        import torch

        from adacot.backends.models import hub_token, resolve_model

        self.spec = model
        self.batch_size = batch_size
        self.device = device
        self.usage = PrmUsage()
        self._torch = torch
        common: dict[str, Any] = {
            "revision": model.revision,
            "trust_remote_code": model.trust_remote_code,
            "token": hub_token(model),
        }
        source = resolve_model(model)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(source, **common)
        self.model = self._load(source, common, _dtype(torch, model.dtype, device)).to(device).eval()
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        self.max_tokens = min(n for n in (max_tokens, model.max_model_len, positions) if isinstance(n, int))
        self.marker_id = self._marker_id()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _load(self, source: str, common: dict[str, Any], dtype: Any) -> Any:
        raise NotImplementedError

    def _text(self, question: str, steps: Sequence[str]) -> str:
        raise NotImplementedError

    def _scores(self, logits: Any) -> list[float]:
        """Step scores from the logits rows at the marker positions."""
        raise NotImplementedError

    def _marker_id(self) -> int:
        ids = self.tokenizer.encode(self.marker, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"PRM {self.spec.identity()}: the separator {self.marker!r} is {len(ids)} tokens, need 1"
            )
        return int(ids[0])

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[StepScores]:
        encoded = [self.encode(q, steps) for q, steps in items]
        results: list[StepScores | None] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: len(encoded[i].ids), reverse=True)
        todo = [i for i in order if encoded[i].positions]
        for i in order:
            if not encoded[i].positions:  # nothing to score (no steps, or all cut): no forward pass
                results[i] = self._record(encoded[i], [])
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            for i, scores in zip(batch, self._forward([encoded[i] for i in batch]), strict=True):
                results[i] = self._record(encoded[i], scores)
        return [r for r in results if r is not None]

    def encode(self, question: str, steps: Sequence[str]) -> _Encoded:
        """Token ids and separator positions of one trace, as scored (and as adacot.demo.prm trains)."""
        clean = [s.replace(self.marker, "").strip() for s in steps]
        if not clean:
            return _Encoded([], [], 0)
        ids = list(self._ids(self._text(question, clean)))
        positions = [p for p, t in enumerate(ids) if t == self.marker_id]
        if len(positions) != len(clean):
            raise ValueError(
                f"PRM {self.spec.identity()}: found {len(positions)} {self.marker!r} markers for "
                f"{len(clean)} steps; the tokenizer merges the marker with its neighbours"
            )
        kept = ids[: self.max_tokens]
        return _Encoded(kept, [p for p in positions if p < len(kept)], len(clean))

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=self._add_special_tokens).input_ids)

    _add_special_tokens = False

    def _forward(self, batch: list[_Encoded]) -> list[list[float]]:
        torch = self._torch
        width = max(len(e.ids) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):  # right padding: real tokens keep positions 0..len-1
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        with torch.inference_mode():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logits = out[0].float()  # logits come first for ModelOutput and remote-code tuples alike
        return [self._scores(logits[row, e.positions]) for row, e in enumerate(batch)]

    def _record(self, e: _Encoded, scores: list[float]) -> StepScores:
        dropped = e.steps - len(scores)
        self.usage.traces += 1
        self.usage.steps_scored += len(scores)
        self.usage.steps_dropped += dropped
        self.usage.truncated_traces += dropped > 0
        return StepScores(tuple(scores), truncated=dropped > 0)

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


class DiscriminativePRM(_TokenPRM):
    """Qwen2.5-Math-PRM convention. Loads AutoModelForTokenClassification (2 labels); a checkpoint
    whose config names its own architecture (Qwen2ForProcessRewardModel) is loaded through AutoModel
    when the spec sets trustRemoteCode."""

    marker = QWEN_PRM_SEPARATOR

    def __init__(
        self,
        model: ModelSpec,
        *,
        batch_size: int = 8,
        max_tokens: int = 8192,
        device: str = "cpu",
        system: str | None = QWEN_PRM_SYSTEM,
        separator: str = QWEN_PRM_SEPARATOR,
        positive_label: int = 1,
    ) -> None:
        self.marker = separator
        self.system = system
        self.positive_label = positive_label
        super().__init__(model, batch_size=batch_size, max_tokens=max_tokens, device=device)

    def _load(self, source: str, common: dict[str, Any], dtype: Any) -> Any:
        from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

        config = AutoConfig.from_pretrained(source, **common)
        architectures = getattr(config, "architectures", None) or []
        if any(a.endswith("ForTokenClassification") for a in architectures):
            return AutoModelForTokenClassification.from_pretrained(source, dtype=dtype, **common)
        if not self.spec.trust_remote_code:
            raise ValueError(
                f"PRM {self.spec.identity()}: architectures {architectures} is not a token-classification "
                "model; set model.trustRemoteCode to load its own class (as Qwen2.5-Math-PRM needs)"
            )
        return AutoModel.from_pretrained(source, dtype=dtype, **common)

    def _text(self, question: str, steps: Sequence[str]) -> str:
        system = [{"role": "system", "content": self.system}] if self.system else []
        messages = [
            *system,
            {"role": "user", "content": question},
            {"role": "assistant", "content": "".join(s + self.marker for s in steps)},
        ]
        template = self.spec.chat_template or self.tokenizer.chat_template or CHATML_FALLBACK
        return str(
            self.tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=False
            )
        )

    def _scores(self, logits: Any) -> list[float]:
        if logits.shape[-1] != 2:
            raise ValueError(
                f"PRM {self.spec.identity()}: the head gives {logits.shape[-1]} outputs per token, "
                "a discriminative PRM needs 2 (negative, positive)"
            )
        return [float(p) for p in logits.softmax(dim=-1)[:, self.positive_label]]


class LanguageModelPRM(_TokenPRM):
    """Math-Shepherd convention over AutoModelForCausalLM. The good/bad tokens default to "+" and "-"
    as the tokenizer encodes them alone; pass their ids where the checkpoint trained other forms (the
    published Math-Shepherd code takes them from encode("+ -"))."""

    _add_special_tokens = True  # Math-Shepherd encodes with the tokenizer's BOS

    def __init__(
        self,
        model: ModelSpec,
        *,
        batch_size: int = 8,
        max_tokens: int = 8192,
        device: str = "cpu",
        step_tag: str = MATH_SHEPHERD_TAG,
        good_token: str = "+",
        bad_token: str = "-",
        good_token_id: int | None = None,
        bad_token_id: int | None = None,
    ) -> None:
        self.marker = step_tag
        super().__init__(model, batch_size=batch_size, max_tokens=max_tokens, device=device)
        self.good_id = good_token_id if good_token_id is not None else self._last_token(good_token)
        self.bad_id = bad_token_id if bad_token_id is not None else self._last_token(bad_token)
        if self.good_id == self.bad_id:
            raise ValueError(f"PRM {model.identity()}: good and bad tokens share the id {self.good_id}")

    def _marker_id(self) -> int:
        # Math-Shepherd's own code takes the last token of encode("ки"); the marker count check in
        # encode catches a tokenizer that encodes the tag differently in context.
        return self._last_token(self.marker)

    def _last_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise ValueError(f"PRM {self.spec.identity()}: {text!r} encodes to no token")
        return int(ids[-1])

    def _load(self, source: str, common: dict[str, Any], dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **common)

    def _text(self, question: str, steps: Sequence[str]) -> str:
        return f"{question} " + "\n".join(f"{s} {self.marker}" for s in steps)

    def _scores(self, logits: Any) -> list[float]:
        pair = logits[:, [self.good_id, self.bad_id]]
        return [float(p) for p in pair.softmax(dim=-1)[:, 0]]


def _dtype(torch: Any, name: str, device: str) -> Any:
    if name == "auto":  # bfloat16 on GPUs; float32 on CPU, where bfloat16 is slow and less exact
        return torch.float32 if device == "cpu" else torch.bfloat16
    return getattr(torch, name)


JUDGE_SAMPLING = SamplingSpec(samples_per_question=1, temperature=0.0, top_p=1.0, max_tokens=2048)
"""Judge decoding by default: greedy, one sample, room for a short rationale before the scores."""


def prm_system_prompt(prm: PrmSpec, task: TaskType) -> str | None:
    """The system message the PRM (or judge) gets for questions of `task`; None for none."""
    if prm.kind == "languageModel":
        return None
    if prm.system_prompt is not None:
        return prm.system_prompt or None
    return (JUDGE_SYSTEMS if prm.kind == "llmJudge" else PRM_SYSTEMS)[task]


def make_step_scorer(
    prm: PrmSpec,
    generator_factory: Callable[[Endpoint], Generator] | None = None,
    *,
    task: TaskType = TaskType.math,
    device: str | None = None,
    judge_sampling: SamplingSpec = JUDGE_SAMPLING,
) -> StepScorer:
    """The StepScorer `prm.kind` names, prompted for questions of `task`. `generator_factory` builds the
    judge's Generator from its endpoint (default: the OpenAI-compatible HTTP backend); `device`
    defaults to the first GPU if any."""
    system = prm_system_prompt(prm, task)
    if prm.kind == "llmJudge":
        from adacot.backends.prm_judge import JudgePRM

        assert prm.endpoint is not None  # PrmSpec guarantees it for llmJudge
        factory = generator_factory or _http_generator
        return JudgePRM(
            factory(prm.endpoint),
            judge_sampling,
            batch_size=prm.batch_size,
            max_tokens=prm.max_tokens,
            system=system,
        )
    assert prm.model is not None  # PrmSpec guarantees it for weight-based kinds
    where = device or _default_device()
    if prm.kind == "languageModel":
        return LanguageModelPRM(
            prm.model,
            batch_size=prm.batch_size,
            max_tokens=prm.max_tokens,
            device=where,
            step_tag=prm.step_tag,
        )
    return DiscriminativePRM(
        prm.model, batch_size=prm.batch_size, max_tokens=prm.max_tokens, device=where, system=system
    )


def _http_generator(endpoint: Endpoint) -> Generator:
    from adacot.backends.openai_http import OpenAIGenerator

    generator: Generator = OpenAIGenerator(endpoint)
    return generator


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
