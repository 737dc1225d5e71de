"""Regression: seeded requests whose prompts do not fit one scheduler step, on vLLM's CPU build.

vLLM's CPU model runner rewinds a request's torch Generator when chunked prefill splits its prompt across
steps, and CPU Generators have no offset, so the engine died with "CPU Generator does not use offset".
Grading seeds every request; VllmGenerator therefore prefills whole prompts on CPU. Here the step budget
(--max-num-batched-tokens 1024) is far below the batch's prompt tokens, which used to crash the engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import KV_CACHE_BYTES, math500_problems

from adacot.api.common import ModelSpec
from adacot.api.generation import SamplingSpec, VllmOptions
from adacot.backends.base import Prompt
from adacot.backends.vllm import VllmGenerator

pytestmark = pytest.mark.integration
BUDGET = 1024


def test_seeded_prompts_beyond_one_step_budget(tiny_lm: Path) -> None:
    options = VllmOptions(
        extra_args=["--kv-cache-memory-bytes", KV_CACHE_BYTES, "--max-num-batched-tokens", str(BUDGET)]
    )
    generator = VllmGenerator(ModelSpec(path=str(tiny_lm), max_model_len=BUDGET), options, chat=True)
    try:
        prompts = [Prompt.chat(problem) for problem in math500_problems(24)]
        completions = list(
            generator.generate(
                prompts, SamplingSpec(samples_per_question=2, temperature=1.0, max_tokens=8, seed=3)
            )
        )
    finally:
        generator.close()
    assert sorted(c.index for c in completions) == list(range(len(prompts)))
    samples = [s for c in completions for s in c.samples]
    assert len(samples) == 2 * len(prompts) and all(s.finish_reason != "error" for s in samples)
    assert all(0 < s.completion_tokens <= 8 for s in samples)
    # The batch's prompts need several steps' budget: chunked prefill would have split some of them.
    assert sum(c.samples[0].prompt_tokens for c in completions) > 2 * BUDGET
