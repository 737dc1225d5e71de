"""transformers `generate` behind the `Generator` interface: the small fallback engine.

Callers: `make_generator` for `inference.engine: transformers`; also home of the prompt rendering the vLLM
engine shares (`render_prompt`), so both engines turn a chat Prompt into the same text.

Use it where vLLM cannot run (an unsupported architecture, a head_dim the CPU attention rejects, a quick
check on a laptop). It generates one prompt at a time with `num_return_sequences = n` (no cross-prompt
batching, so no padding effects), which is slow for large pools by design: correctness over speed.
Seeds: torch's generator is re-seeded per prompt from the prompt's seed, so a prompt's samples do not
depend on which other prompts share the call. Finish reason: "stop" when the sample ends in an
end-of-sequence token or a stop string, else "length".
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from adacot.api.common import ModelSpec
from adacot.api.generation import SamplingSpec
from adacot.backends.base import Completion, Prompt, Sample, UsageCounter


class HFGenerator:
    """`AutoModelForCausalLM.generate` on CPU (or the first GPU when one is present)."""

    def __init__(
        self, model: ModelSpec, *, chat: bool = True, batch_size: int = 1, source: str | None = None
    ) -> None:
        import torch

        from adacot.backends.models import hub_token, resolve_model

        transformers: Any = importlib.import_module("transformers")  # untyped use: its stubs are partial
        where = source or resolve_model(model)
        token = hub_token(model)
        self.usage = UsageCounter()
        self.chat = chat
        self.batch_size = batch_size  # kept for symmetry; prompts are generated one by one
        self._chat_template = model.chat_template
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        common: dict[str, Any] = {
            "revision": model.revision,
            "trust_remote_code": model.trust_remote_code,
            "token": token,
        }
        self._tokenizer: Any = transformers.AutoTokenizer.from_pretrained(where, **common)
        dtype = getattr(torch, torch_dtype_name(model.dtype, cpu=self._device == "cpu"))
        self._model: Any = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **common).to(
            self._device
        )
        self._model.eval()
        self._eos = _eos_ids(self._model.generation_config, self._tokenizer)
        self.max_model_len = model.max_model_len or getattr(
            self._model.config, "max_position_embeddings", None
        )

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        for index, prompt in enumerate(prompts):
            yield self._complete(index, prompt, sampling)

    def close(self) -> None:
        self._model = None

    def _complete(self, index: int, prompt: Prompt, sampling: SamplingSpec) -> Completion:
        import torch

        text = render_prompt(self._tokenizer, prompt, chat=self.chat, chat_template=self._chat_template)
        ids = self._tokenizer.encode(text, add_special_tokens=prompt.text is not None)
        budget = sampling.max_tokens
        if self.max_model_len is not None:
            budget = min(budget, self.max_model_len - len(ids))
        if budget < 1:
            return self._failed(index, len(ids), sampling.samples_per_question)
        torch.manual_seed(sampling.seed if prompt.seed is None else prompt.seed)
        began = time.monotonic()
        with torch.no_grad():
            out = self._model.generate(
                torch.tensor([ids], device=self._device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self._device),
                tokenizer=self._tokenizer,  # transformers needs it to match stop strings
                **generate_kwargs(sampling, budget, self._eos),
            )
        latency = (time.monotonic() - began) / sampling.samples_per_question
        samples = tuple(
            self._sample(row[len(ids) :].tolist(), len(ids), sampling, budget, latency) for row in out
        )
        self.usage.requests += 1
        self.usage.prompt_tokens += len(ids)
        self.usage.completion_tokens += sum(s.completion_tokens for s in samples)
        return Completion(index=index, samples=samples)

    def _sample(
        self, new: list[int], prompt_tokens: int, sampling: SamplingSpec, budget: int, latency: float
    ) -> Sample:
        # Rows shorter than the longest are padded after their EOS; cut at the first EOS.
        end = next((i for i, t in enumerate(new) if t in self._eos), None)
        tokens = new if end is None else new[:end]
        text: str = self._tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in sampling.stop:
            text = text.split(stop, 1)[0]
        # Ended before the budget without EOS: a stop string matched (transformers matches on tokens).
        stopped = end is not None or len(new) < budget
        return Sample(
            text=text,
            finish_reason="stop" if stopped else "length",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(tokens) + (1 if end is not None else 0),
            latency_s=latency,
        )

    def _failed(self, index: int, length: int, n: int) -> Completion:
        self.usage.failures += 1
        error = f"prompt has {length} tokens; the model's context is {self.max_model_len}"
        return Completion(index, (Sample("", "error", prompt_tokens=length, error=error),) * n)


def generate_kwargs(sampling: SamplingSpec, max_new_tokens: int, eos: list[int]) -> dict[str, Any]:
    """transformers `generate` arguments for one prompt; temperature 0 means greedy."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "num_return_sequences": sampling.samples_per_question,
        "eos_token_id": eos,
        "pad_token_id": eos[0] if eos else None,
    }
    if sampling.stop:
        kwargs["stop_strings"] = list(sampling.stop)
    if sampling.temperature == 0:
        return {**kwargs, "do_sample": False, "num_beams": 1}
    return {
        **kwargs,
        "do_sample": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k or 0,  # 0 disables top-k in transformers
    }


def render_prompt(tokenizer: Any, prompt: Prompt, *, chat: bool, chat_template: str | None = None) -> str:
    """The text a model sees: `text` as is; chat `messages` through the chat template (with the
    assistant turn opened) when `chat`, else their contents joined by blank lines."""
    if prompt.text is not None:
        return prompt.text
    messages = [{"role": role, "content": content} for role, content in prompt.messages]
    if not chat:
        return "\n\n".join(m["content"] for m in messages)
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError("the model's tokenizer has no chat template; set model.chatTemplate or disable chat")
    rendered: str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, chat_template=chat_template
    )
    return rendered


def torch_dtype_name(dtype: str, *, cpu: bool) -> str:
    """ModelSpec.dtype to a torch dtype name: auto is float32 on CPU, bfloat16 on accelerators."""
    if dtype == "auto":
        return "float32" if cpu else "bfloat16"
    return dtype


def _eos_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    eos = getattr(generation_config, "eos_token_id", None)
    ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids]
