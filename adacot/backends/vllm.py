"""The vLLM offline engine (`vllm.LLM`) behind the `Generator` interface.

Callers: `make_generator` for GradingRun/DistillationJob specs with `inference.engine: vllm`; the
integration tests and the grading benchmark.

Process layout. By default the engine runs in vLLM's own layout: the engine core in a child process, so
scheduling and detokenisation overlap the forward pass (benchmarks/grading.py measures what in-process
costs: 2.7x to 3.8x the time on this 2-CPU machine). vLLM *spawns* that child on the CPU build (and wherever
CUDA is already initialised), which re-imports `__main__`: every adacot entry point (the `adacot` console
script: CLI, `adacot stage` in pods, `adacot run`, the demo) is guarded, and so are pytest's. A caller
that is not (a script without `if __name__ == "__main__":`) passes `in_process=True`, or sets vLLM's
own switch VLLM_ENABLE_V1_MULTIPROCESSING=0, to run the engine core in the calling process. The engine
core exits with the process that built it, SIGKILL included (adacot.backends.vllm_guard). Tensor
parallelism (`options.tensor_parallel_size` > 1) starts one worker process per GPU either way.

CPU memory. On the CPU build `gpu_memory_utilization` is the share of the *host's* memory reserved for
the KV cache and vLLM refuses to start when that much is not free. Pass a fixed
`--kv-cache-memory-bytes` in `options.extra_args` on shared machines (the tests do).

Limits: one model per generator; prompts longer than the context become "error" samples instead of
failing the whole batch; per-sample token counts are exact (taken from the engine's outputs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from adacot.api.common import ModelSpec
from adacot.api.generation import SamplingSpec, VllmOptions
from adacot.backends.base import Completion, Prompt, Sample, UsageCounter
from adacot.backends.hf import render_prompt, torch_dtype_name
from adacot.backends.vllm_guard import GUARD_ENV

IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
"""vLLM's switch: "0" runs the engine core in the calling process."""


class VllmGenerator:
    """Generates with one `vllm.LLM`; yields the Completions of each chunk of `batch_size` prompts."""

    def __init__(
        self,
        model: ModelSpec,
        options: VllmOptions,
        *,
        chat: bool,
        max_model_len: int | None = None,
        batch_size: int = 256,
        source: str | None = None,
        in_process: bool | None = None,
    ) -> None:
        """`in_process`: True runs the engine core in this process, False in its own (vLLM's default);
        None follows VLLM_ENABLE_V1_MULTIPROCESSING, and vLLM's default when that is unset."""
        from vllm import LLM
        from vllm.v1.engine.core_client import InprocClient

        from adacot.backends.models import hub_token, resolve_model

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.usage = UsageCounter()
        self.chat = chat
        self.batch_size = batch_size
        self._chat_template = model.chat_template
        kwargs = engine_kwargs(model, options, max_model_len=max_model_len)
        with _layout(in_process):
            self._llm: Any = LLM(model=source or resolve_model(model), hf_token=hub_token(model), **kwargs)
        self.in_process: bool = isinstance(self._llm.llm_engine.engine_core, InprocClient)
        """Which layout vLLM built (its switch may be set by the caller's environment)."""
        self._tokenizer = self._llm.get_tokenizer()
        self.max_model_len: int = self._llm.llm_engine.model_config.max_model_len

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        for start in range(0, len(prompts), self.batch_size):
            yield from self._generate_chunk(prompts[start : start + self.batch_size], start, sampling)

    def close(self) -> None:
        """Drop the engine; in-process its memory goes with the last reference."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm

    def _generate_chunk(
        self, chunk: Sequence[Prompt], start: int, sampling: SamplingSpec
    ) -> Iterator[Completion]:
        from vllm.inputs import TokensPrompt

        token_ids = [self._token_ids(p) for p in chunk]
        fits = [i for i, ids in enumerate(token_ids) if len(ids) < self.max_model_len]
        for i in sorted(set(range(len(chunk))) - set(fits)):
            yield self._too_long(start + i, len(token_ids[i]), sampling.samples_per_question)
        if not fits:
            return
        began = time.monotonic()
        outputs = self._llm.generate(
            [TokensPrompt(prompt_token_ids=token_ids[i]) for i in fits],
            [sampling_params(sampling, chunk[i].seed) for i in fits],
            use_tqdm=False,
        )
        per_prompt = (time.monotonic() - began) / len(fits)
        for i, output in zip(fits, outputs, strict=True):
            yield self._completion(start + i, output, per_prompt)

    def _token_ids(self, prompt: Prompt) -> list[int]:
        text = render_prompt(self._tokenizer, prompt, chat=self.chat, chat_template=self._chat_template)
        # A rendered chat template already carries its special tokens; plain text gets the model's own.
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=prompt.text is not None)
        return ids

    def _completion(self, index: int, output: Any, latency_s: float) -> Completion:
        prompt_tokens = len(output.prompt_token_ids or ())
        samples = tuple(
            Sample(
                text=o.text,
                finish_reason="length" if o.finish_reason == "length" else "stop",
                prompt_tokens=prompt_tokens,
                completion_tokens=len(o.token_ids),
                latency_s=latency_s,
            )
            for o in sorted(output.outputs, key=lambda o: o.index)
        )
        self.usage.requests += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += sum(s.completion_tokens for s in samples)
        return Completion(index=index, samples=samples)

    def _too_long(self, index: int, length: int, n: int) -> Completion:
        self.usage.failures += 1
        error = f"prompt has {length} tokens; the model's context (max_model_len) is {self.max_model_len}"
        failed = Sample(text="", finish_reason="error", prompt_tokens=length, error=error)
        return Completion(index=index, samples=(failed,) * n)


@contextmanager
def _layout(in_process: bool | None) -> Iterator[None]:
    """The environment vLLM reads while it builds the engine: the layout asked for, and the parent guard
    for any process it starts (inherited; see adacot.backends.vllm_guard). Restored afterwards, so one
    generator's choice does not become the next one's."""
    changes = {GUARD_ENV: "1"} | ({} if in_process is None else {IN_PROCESS_ENV: "0" if in_process else "1"})
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sampling_params(sampling: SamplingSpec, seed: int | None) -> Any:
    """vLLM SamplingParams for one prompt (the prompt's own seed wins over the spec's)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=sampling.samples_per_question,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k or 0,  # 0 disables top-k in vLLM
        max_tokens=sampling.max_tokens,
        seed=sampling.seed if seed is None else seed,
        stop=list(sampling.stop) or None,
    )


def engine_kwargs(model: ModelSpec, options: VllmOptions, *, max_model_len: int | None) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments from the spec; `options.extra_args` are parsed like `vllm serve`
    flags, so any engine argument can be set without a new spec field."""
    kwargs: dict[str, Any] = {
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "enforce_eager": options.enforce_eager,
        "trust_remote_code": model.trust_remote_code,
        "revision": model.revision,
        "dtype": torch_dtype_name(model.dtype, cpu=_on_cpu()),
    }
    if options.max_num_seqs is not None:
        kwargs["max_num_seqs"] = options.max_num_seqs
    context = max_model_len or model.max_model_len
    if context is not None:
        kwargs["max_model_len"] = context
    if _on_cpu():
        # vLLM's CPU build fails ("CPU Generator does not use offset") when chunked prefill splits the
        # prompt of a seeded request across steps, and every grading request is seeded: prefill whole
        # prompts there (extra_args can turn chunking back on).
        kwargs["enable_chunked_prefill"] = False
    kwargs.update(parse_extra_args(options.extra_args))
    return kwargs


def parse_extra_args(args: Sequence[str]) -> dict[str, Any]:
    """Engine arguments given explicitly in `vllm serve` flag form, e.g. ["--kv-cache-memory-bytes", "1G"]."""
    if not args:
        return {}
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser: Any = EngineArgs.add_cli_args(FlexibleArgumentParser(prog="vllm extra_args"))  # type: ignore[no-untyped-call]
    try:
        parsed = vars(parser.parse_args(list(args)))
    except SystemExit as exc:  # argparse exits on a bad flag; turn that into an error the spec can show
        raise ValueError(f"inference.vllm.extraArgs: cannot parse {list(args)!r}") from exc
    defaults = vars(parser.parse_args([]))
    return {key: value for key, value in parsed.items() if value != defaults.get(key)}


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())
