"""The vLLM offline engine (CPU build, adacot's default layout: the engine core in its own process) on the
session's tiny model, with real MATH-500 questions: n samples, seeds, the chat template, finish reasons,
chunked yielding, over-long prompts; the in-process layout as an option."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import KV_CACHE_BYTES, math500_problems
from transformers import AutoTokenizer

from adacot.api.common import ModelSpec
from adacot.api.generation import SamplingSpec, VllmOptions
from adacot.backends.base import Completion, Generator, Prompt
from adacot.backends.vllm import IN_PROCESS_ENV, VllmGenerator, parse_extra_args

pytestmark = pytest.mark.integration
CONTEXT = 1024
BATCH = 3


@pytest.fixture(scope="module")
def engine(tiny_lm: Path) -> Iterator[VllmGenerator]:
    options = VllmOptions(extra_args=["--kv-cache-memory-bytes", KV_CACHE_BYTES])
    generator = VllmGenerator(
        ModelSpec(path=str(tiny_lm)), options, chat=True, max_model_len=CONTEXT, batch_size=BATCH
    )
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def questions() -> list[Prompt]:
    return [Prompt.chat(problem) for problem in math500_problems(5)]


def texts(completions: list[Completion]) -> dict[int, list[str]]:
    return {c.index: [s.text for s in c.samples] for c in completions}


def test_n_samples_per_prompt_reproducible_by_seed(engine: VllmGenerator, questions: list[Prompt]) -> None:
    assert isinstance(engine, Generator)
    sampling = SamplingSpec(samples_per_question=2, temperature=1.0, max_tokens=24, seed=7)
    first = list(engine.generate(questions, sampling))
    again = list(engine.generate(questions, sampling))
    other = list(engine.generate(questions, sampling.model_copy(update={"seed": 8})))

    assert sorted(c.index for c in first) == list(range(len(questions)))
    assert all(len(c.samples) == 2 for c in first)
    assert texts(first) == texts(again)
    assert texts(first) != texts(other)
    assert any(c.samples[0].text != c.samples[1].text for c in first)  # n draws, not n copies
    for sample in (s for c in first for s in c.samples):
        assert 0 < sample.completion_tokens <= 24
        assert (sample.finish_reason == "length") == (sample.completion_tokens == 24)


def test_per_prompt_seed_does_not_depend_on_batch_neighbours(
    engine: VllmGenerator, questions: list[Prompt]
) -> None:
    sampling = SamplingSpec(samples_per_question=1, temperature=1.0, max_tokens=12, seed=0)
    seeded = [Prompt(messages=q.messages, seed=100 + i) for i, q in enumerate(questions)]
    together = texts(list(engine.generate(seeded, sampling)))
    alone = texts(list(engine.generate(seeded[3:4], sampling)))
    assert alone[0] == together[3]


def test_tiny_max_tokens_gives_length_and_exact_token_counts(
    engine: VllmGenerator, questions: list[Prompt], tiny_lm: Path
) -> None:
    before = engine.usage.completion_tokens
    completions = list(engine.generate(questions, SamplingSpec(samples_per_question=2, max_tokens=1, seed=1)))
    samples = [s for c in completions for s in c.samples]
    assert {s.finish_reason for s in samples} == {"length"}
    assert {s.completion_tokens for s in samples} == {1}
    assert engine.usage.completion_tokens - before == len(samples)

    # The chat template was applied: the engine saw exactly the rendered ChatML prompt.
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    for c in completions:
        messages = [{"role": r, "content": t} for r, t in questions[c.index].messages]
        rendered = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        assert rendered.startswith("<|im_start|>user\n") and rendered.endswith("<|im_start|>assistant\n")
        assert c.samples[0].prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False))


def test_completions_are_yielded_per_chunk(engine: VllmGenerator, questions: list[Prompt]) -> None:
    requests = engine.usage.requests
    stream = engine.generate(questions, SamplingSpec(max_tokens=4))
    first_chunk = [next(stream) for _ in range(BATCH)]
    assert engine.usage.requests - requests == BATCH  # the second chunk has not run yet
    rest = list(stream)
    assert sorted(c.index for c in first_chunk + rest) == list(range(len(questions)))


def test_over_long_prompt_is_an_error_sample_not_a_failed_batch(
    engine: VllmGenerator, questions: list[Prompt]
) -> None:
    long = Prompt(text="1 2 3 4 " * CONTEXT)
    completions = {
        c.index: c
        for c in engine.generate([questions[0], long], SamplingSpec(samples_per_question=2, max_tokens=4))
    }
    assert [s.finish_reason for s in completions[1].samples] == ["error", "error"]
    assert "max_model_len" in (completions[1].samples[0].error or "")
    assert completions[0].samples[0].finish_reason in ("stop", "length")


def test_default_layout_is_vllms_and_in_process_is_an_option(
    engine: VllmGenerator, questions: list[Prompt], tiny_lm: Path
) -> None:
    assert not engine.in_process  # the engine core runs in its own process by default
    env = os.environ.get(IN_PROCESS_ENV)
    options = VllmOptions(extra_args=["--kv-cache-memory-bytes", KV_CACHE_BYTES])
    inline = VllmGenerator(
        ModelSpec(path=str(tiny_lm)), options, chat=True, max_model_len=CONTEXT, in_process=True
    )
    try:
        assert inline.in_process
        assert os.environ.get(IN_PROCESS_ENV) == env  # the choice does not leak to the next generator
        sampling = SamplingSpec(samples_per_question=2, temperature=1.0, max_tokens=16, seed=5)
        assert texts(list(inline.generate(questions[:1], sampling))) == texts(
            list(engine.generate(questions[:1], sampling))
        )
    finally:
        inline.close()


def test_extra_args_parse_like_vllm_serve_flags() -> None:
    args = parse_extra_args(["--kv-cache-memory-bytes", "1G", "--max-num-batched-tokens", "4096"])
    assert args == {"kv_cache_memory_bytes": 1 << 30, "max_num_batched_tokens": 4096}
    with pytest.raises(ValueError, match="extraArgs"):
        parse_extra_args(["--no-such-flag"])
