"""The HTTP backend against a local fault-injecting server (tests/fault_server.py): every prompt ends
answered or explicitly failed, each index exactly once, retries bounded, Retry-After honoured, the API
key sent as a Bearer token and never leaked."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from fault_server import FaultServer

from adacot.api.common import SecretRef
from adacot.api.generation import Endpoint, SamplingSpec
from adacot.backends.base import Completion, Prompt
from adacot.backends.openai_http import OpenAIGenerator, split_tokens
from adacot.backends.ratelimit import Backoff

KEY = "sk-test-7d1f0c2e9a"
SECRET = SecretRef(name="teacher-api", key="api-key")
MAX_RETRIES = 3
SCRIPT = {
    "rate limited": ["429:1"],
    "two 500s": ["500", "500"],
    "stalls": ["stall"],
    "dropped": ["drop"],
    "empty choices": ["empty"],
    "malformed json": ["malformed", "malformed"],
    "reasoner": ["reasoning"],
    "fewer choices": ["fewer"],
    "always 500": ["500"] * 20,
    "bad request": ["400"],
    "plain": [],
}


def endpoint(url: str, **overrides: object) -> Endpoint:
    settings: dict[str, object] = {
        "url": url,
        "model": "teacher",
        "api_key": SECRET,
        "timeout_seconds": 0.5,
        "concurrency": 4,
        "max_retries": MAX_RETRIES,
        **overrides,
    }
    return Endpoint.model_validate(settings)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET.env_var, KEY)
    return KEY


def run(
    url: str, prompts: list[Prompt], sampling: SamplingSpec, **overrides: object
) -> tuple[list[Completion], OpenAIGenerator]:
    with OpenAIGenerator(endpoint(url, **overrides), backoff=Backoff(0.01, 0.05), rng_seed=0) as gen:
        return list(gen.generate(prompts, sampling)), gen


def test_every_prompt_ends_answered_or_failed(api_key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    prompts = [Prompt.chat(text) for text in SCRIPT]
    with FaultServer(script=SCRIPT) as server:
        completions, gen = run(
            server.url, prompts, SamplingSpec(samples_per_question=2, max_tokens=32, seed=5)
        )

    assert sorted(c.index for c in completions) == list(range(len(prompts)))
    by_prompt = {prompts[c.index].messages[-1][1]: c for c in completions}
    assert all(len(c.samples) == 2 for c in completions)
    answered = {p for p, c in by_prompt.items() if all(s.finish_reason == "stop" for s in c.samples)}
    assert answered == set(SCRIPT) - {"always 500", "bad request"}
    for prompt in answered:
        assert [s.text.startswith(f"answer to {prompt}") for s in by_prompt[prompt].samples] == [True, True]

    # Failures are explicit, bounded, and say why.
    dead = by_prompt["always 500"].samples
    assert {s.finish_reason for s in dead} == {"error"}
    assert "HTTP 500" in (dead[0].error or "") and len(server.attempts("always 500")) == MAX_RETRIES + 1
    assert len(server.attempts("bad request")) == 1  # a 4xx other than 429 is not retried

    # Each fault costs exactly the attempts it scripted, then the prompt is answered.
    for prompt, plan in SCRIPT.items():
        if prompt in answered and prompt != "fewer choices":
            retried = sum(b not in ("ok", "reasoning") for b in plan)
            assert len(server.attempts(prompt)) == retried + 1, prompt
    # A server that ignores n: the missing sample is asked for again, with its own seed.
    fewer = server.attempts("fewer choices")
    assert len(fewer) == 2 and [s.text for s in by_prompt["fewer choices"].samples] == [
        "answer to fewer choices (seed 5, choice 0)",
        "answer to fewer choices (seed 6, choice 0)",
    ]
    assert by_prompt["reasoner"].samples[0].reasoning == "thinking about reasoner"

    assert gen.usage.requests == len(server.hits)
    assert gen.usage.failures == 2
    logical_requests = len(SCRIPT) + 1  # one per prompt, plus the second request of 'fewer choices'
    assert gen.usage.retries == len(server.hits) - logical_requests
    assert gen.usage.completion_tokens == sum(s.completion_tokens for c in completions for s in c.samples)
    assert gen.usage.completion_tokens > 0

    # The key travels as a Bearer token and nowhere else.
    assert {h.authorization for h in server.hits} == {f"Bearer {api_key}"}
    assert "***" in (by_prompt["bad request"].samples[0].error or "")
    leaks = [repr(completions), repr(gen.usage), caplog.text]
    assert not [text for text in leaks if api_key in text]
    assert "retry" in caplog.text  # retries are logged (without the key)


def test_retry_after_is_honoured(api_key: str) -> None:
    with FaultServer(script={"wait": ["429:1", "429:1"]}) as server:
        completions, _ = run(server.url, [Prompt.chat("wait")], SamplingSpec(max_tokens=8))
    hits = server.attempts("wait")
    assert [h.behaviour for h in hits] == ["429:1", "429:1", "ok"]
    # Ordering fact recorded server-side: each retry arrived no earlier than Retry-After allowed.
    for previous, retry in itertools.pairwise(hits):
        assert previous.replied is not None and retry.arrived - previous.replied >= 1.0
    assert completions[0].samples[0].finish_reason == "stop"


def test_completions_api_from_inside_a_running_loop(api_key: str) -> None:
    prompts = [Prompt(text=f"text prompt {i}") for i in range(6)]

    async def caller() -> list[Completion]:
        # The synchronous interface must not need (or block on) the caller's own event loop.
        completions, _ = run(
            server.url, prompts, SamplingSpec(samples_per_question=3, seed=1, max_tokens=8), api="completions"
        )
        return completions

    with FaultServer(script={"text prompt 2": ["drop"]}) as server:
        completions = asyncio.run(caller())
    assert sorted(c.index for c in completions) == list(range(6))
    for c in completions:
        assert [s.finish_reason for s in c.samples] == ["length"] * 3
        assert c.samples[2].text == f"text prompt {c.index}".join(["answer to ", " (seed 1, choice 2)"])


def test_stopping_early_abandons_the_rest(api_key: str) -> None:
    prompts = [Prompt.chat(f"q{i}") for i in range(200)]
    with FaultServer() as server:
        gen = OpenAIGenerator(endpoint(server.url, concurrency=2))
        first = next(iter(gen.generate(prompts, SamplingSpec(max_tokens=4))))
        gen.close()
    assert first.samples[0].finish_reason == "stop"
    assert len(server.hits) < len(prompts)


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET.env_var, raising=False)
    with pytest.raises(ValueError, match="ADACOT_SECRET_TEACHER_API_API_KEY"):
        OpenAIGenerator(endpoint("http://127.0.0.1:9/v1"))


def test_unreachable_server_fails_every_prompt_explicitly(api_key: str) -> None:
    completions, gen = run(
        "http://127.0.0.1:9/v1", [Prompt.chat("a"), Prompt.chat("b")], SamplingSpec(), max_retries=1
    )
    assert sorted(c.index for c in completions) == [0, 1]
    assert all(
        s.finish_reason == "error" and "connection error" in (s.error or "")
        for c in completions
        for s in c.samples
    )
    assert (gen.usage.requests, gen.usage.retries, gen.usage.failures) == (4, 2, 2)


@pytest.mark.parametrize(
    ("total", "lengths", "fixed", "shares"),
    [
        (32, [40, 60], [16, 16], [16, 16]),  # both cut by max_tokens: exact
        (20, [40, 60], [16, None], [16, 4]),  # one cut: the rest goes to the other
        (10, [3, 1], [None, None], [8, 2]),  # proportional to text length
        (7, [0, 0], [None, None], [4, 3]),  # nothing to go by: even, summing exactly
        (30, [1, 1], [16, 16], [15, 15]),  # cut by the context, not max_tokens: proportional
        (5, [4], [16], [5]),  # one choice: the total
    ],
)
def test_split_completion_tokens(
    total: int, lengths: list[int], fixed: list[int | None], shares: list[int]
) -> None:
    assert split_tokens(total, lengths, fixed) == shares
