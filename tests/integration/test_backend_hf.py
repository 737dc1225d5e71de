"""The transformers fallback on the session's tiny model: chat template, n samples, seeds, max tokens,
finish reasons and token counts; built through the factory as a spec would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import math500_problems
from transformers import AutoTokenizer

from adacot.api.common import ModelSpec
from adacot.api.generation import InferenceSpec, SamplingSpec
from adacot.backends.base import Completion, Generator, Prompt
from adacot.backends.factory import make_generator
from adacot.backends.hf import HFGenerator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hf(tiny_lm: Path) -> Iterator[Generator]:
    generator = make_generator(ModelSpec(path=str(tiny_lm)), InferenceSpec(engine="transformers"))
    yield generator
    generator.close()


def texts(completions: list[Completion]) -> dict[int, list[str]]:
    return {c.index: [s.text for s in c.samples] for c in completions}


def test_n_samples_seeded_with_length_finish(hf: Generator, tiny_lm: Path) -> None:
    assert isinstance(hf, HFGenerator)
    prompts = [Prompt.chat(p) for p in math500_problems(3)]
    sampling = SamplingSpec(samples_per_question=2, temperature=1.0, max_tokens=8, seed=11)
    first = list(hf.generate(prompts, sampling))
    assert texts(first) == texts(list(hf.generate(prompts, sampling)))
    assert texts(first) != texts(list(hf.generate(prompts, sampling.model_copy(update={"seed": 12}))))
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    for c in first:
        assert len(c.samples) == 2
        messages = [{"role": r, "content": t} for r, t in prompts[c.index].messages]
        rendered = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        for s in c.samples:
            assert s.prompt_tokens == len(tokenizer.encode(rendered, add_special_tokens=False))
            assert (s.finish_reason == "length") == (s.completion_tokens == 8)


def test_stop_string_ends_a_sample_with_stop(hf: Generator) -> None:
    prompt = [Prompt.chat(math500_problems(1)[0])]
    sampling = SamplingSpec(temperature=1.0, max_tokens=12, seed=4)  # same seed: same draws up to the stop
    (free,) = hf.generate(prompt, sampling)
    text = free.samples[0].text
    assert free.samples[0].finish_reason == "length" and len(text) > 6
    stop = text[3:6]
    (stopped,) = hf.generate(prompt, sampling.model_copy(update={"stop": [stop]}))
    assert stopped.samples[0].finish_reason == "stop"
    assert stopped.samples[0].text == text.split(stop, 1)[0]
    assert stopped.samples[0].completion_tokens < 12


def test_over_long_prompt_is_an_error_sample(hf: Generator) -> None:
    (completion,) = hf.generate(
        [Prompt(text="7 " * 4000)], SamplingSpec(samples_per_question=2, max_tokens=4)
    )
    assert [s.finish_reason for s in completion.samples] == ["error", "error"]
    assert "context" in (completion.samples[0].error or "")
