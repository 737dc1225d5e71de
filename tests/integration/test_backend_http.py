"""The HTTP backend against a real OpenAI-compatible vLLM server (`vllm_server`, the session's tiny
model): chat and completions endpoints, n samples, seeds, usage accounting, the served chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import VllmServer, math500_problems
from transformers import AutoTokenizer

from adacot.api.common import ModelSpec
from adacot.api.generation import Endpoint, InferenceSpec, SamplingSpec
from adacot.backends.base import Completion, Prompt
from adacot.backends.factory import make_generator
from adacot.backends.openai_http import OpenAIGenerator

pytestmark = pytest.mark.integration
SAMPLING = SamplingSpec(samples_per_question=2, temperature=1.0, max_tokens=16, seed=3)


def generate(server: VllmServer, api: str, prompts: list[Prompt]) -> tuple[list[Completion], OpenAIGenerator]:
    endpoint = Endpoint(url=server.url, model=server.model, api=api, concurrency=4, timeout_seconds=120)
    with OpenAIGenerator(endpoint) as generator:
        return list(generator.generate(prompts, SAMPLING)), generator


def check_accounting(completions: list[Completion], generator: OpenAIGenerator, prompts: int) -> None:
    assert sorted(c.index for c in completions) == list(range(prompts))
    samples = [s for c in completions for s in c.samples]
    assert len(samples) == 2 * prompts and {s.finish_reason for s in samples} <= {"stop", "length"}
    assert all(0 < s.completion_tokens <= 16 and s.prompt_tokens > 0 for s in samples)
    usage = generator.usage
    assert (usage.requests, usage.retries, usage.failures) == (prompts, 0, 0)  # the server honours n
    assert usage.completion_tokens == sum(s.completion_tokens for s in samples)
    assert usage.prompt_tokens == sum(c.samples[0].prompt_tokens for c in completions)


def test_chat_completions(vllm_server: VllmServer, tiny_lm: Path) -> None:
    prompts = [Prompt.chat(problem) for problem in math500_problems(4)]
    completions, generator = generate(vllm_server, "chat", prompts)
    check_accounting(completions, generator, len(prompts))

    # The server rendered the same ChatML template the offline engines use.
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    for c in completions:
        messages = [{"role": r, "content": t} for r, t in prompts[c.index].messages]
        rendered = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        assert c.samples[0].prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False))

    again, _ = generate(vllm_server, "chat", prompts)
    assert {c.index: [s.text for s in c.samples] for c in again} == {
        c.index: [s.text for s in c.samples] for c in completions
    }


def test_text_completions(vllm_server: VllmServer) -> None:
    prompts = [Prompt(text=problem) for problem in math500_problems(3)]
    completions, generator = generate(vllm_server, "completions", prompts)
    check_accounting(completions, generator, len(prompts))


def test_factory_builds_the_http_backend(vllm_server: VllmServer) -> None:
    inference = InferenceSpec(engine="http", endpoint=Endpoint(url=vllm_server.url, model=vllm_server.model))
    generator = make_generator(ModelSpec(hub_id="not/needed-for-http"), inference)
    try:
        assert isinstance(generator, OpenAIGenerator)
        (completion,) = generator.generate([Prompt.chat("What is 2+2?")], SamplingSpec(max_tokens=4))
        assert completion.samples[0].finish_reason in ("stop", "length")
    finally:
        generator.close()
