"""JudgePRM over a scripted Generator: prompt shape, lenient parsing, retry-once, unscored traces,
truncation and batching. (The real HTTP judge is exercised where the HTTP backend is tested.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from adacot.api.generation import Endpoint, SamplingSpec
from adacot.api.grading_run import PrmSpec
from adacot.backends.base import Completion, Prompt, Sample, StepScorer, UsageCounter
from adacot.backends.prm import make_step_scorer
from adacot.backends.prm_judge import JUDGE_SYSTEM, JudgePRM, judge_prompt, parse_judge_reply

Reply = Callable[[Prompt, int], Sample]


class ScriptedJudge:
    """Answers each prompt with `reply(prompt, attempt)`, attempt counting per prompt text; yields in
    reverse order to check that completions are matched by index."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.usage = UsageCounter()
        self.calls: list[int] = []
        self.seen: dict[str, int] = {}
        self.closed = False

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        assert sampling.samples_per_question == 1
        self.calls.append(len(prompts))
        for index in reversed(range(len(prompts))):
            text = prompts[index].messages[-1][1]
            attempt = self.seen.get(text, 0)
            self.seen[text] = attempt + 1
            yield Completion(index, (self.reply(prompts[index], attempt),))

    def close(self) -> None:
        self.closed = True


def _steps_in(prompt: Prompt) -> int:
    return int(prompt.messages[-1][1].split("Solution, in ")[1].split(" steps")[0])


def _rate_all(prompt: Prompt, attempt: int) -> Sample:
    lines = [f"Step {k}: {10 - k}" for k in range(1, _steps_in(prompt) + 1)]
    return Sample(text="\n".join(lines), finish_reason="stop")


@pytest.mark.parametrize(
    ("reply", "steps", "expected"),
    [
        ("Step 1: 8\nStep 2: 3", 2, [0.8, 0.3]),
        ("<think>Step 1: 2 looks odd... Step 1: 9</think>\nStep 1: 7\nStep 2: 10", 2, [0.7, 1.0]),
        ("**Step 1:** 6/10\n**Step 2**: 9 / 10", 2, [0.6, 0.9]),
        ("step 1 - score: 7.5\nSTEP 2 = 0", 2, [0.75, 0.0]),
        ("Step 1: 2+2=4 is right.\nStep 2: fine.\n\nRatings:\nStep 1: 9\nStep 2: 4", 2, [0.9, 0.4]),
        ("9\n4\n", 2, [0.9, 0.4]),  # bare list, one number per line
        ("Step 2: 5\nStep 1: 6", 2, [0.6, 0.5]),  # order of lines does not matter
        ("Step 1: 8", 2, None),  # a step not rated
        ("Step 1: 8\nStep 2: 11", 2, None),  # out of range
        ("I cannot judge this.", 1, None),
        ("", 1, None),
    ],
)
def test_parse_judge_reply(reply: str, steps: int, expected: list[float] | None) -> None:
    got = parse_judge_reply(reply, steps)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_prompt_numbers_the_steps() -> None:
    prompt = judge_prompt("What is 2+2?", ["2+2=4.", "So $\\boxed{4}$."])
    role, text = prompt.messages[-1]
    assert role == "user" and prompt.messages[0][0] == "system"
    assert "What is 2+2?" in text and "Step 1: 2+2=4." in text and "Step 2: So $\\boxed{4}$." in text
    assert "Step 1: <score>" in text


def test_scores_in_order_with_batches() -> None:
    judge = ScriptedJudge(_rate_all)
    prm = JudgePRM(judge, SamplingSpec(samples_per_question=3, temperature=0), batch_size=2)
    items = [(f"q{i}", [f"step {k}" for k in range(i + 1)]) for i in range(5)]
    results = prm.score(items)
    assert [r.scores for r in results] == [tuple((10 - k) / 10 for k in range(1, i + 2)) for i in range(5)]
    assert judge.calls == [2, 2, 1]
    assert prm.usage.traces == 5 and prm.usage.steps_scored == 15 and prm.usage.retries == 0
    prm.close()
    assert judge.closed


def test_unparseable_reply_is_retried_once_then_reported_unscored() -> None:
    def reply(prompt: Prompt, attempt: int) -> Sample:
        text = prompt.messages[-1][1]
        if "flaky" in text and attempt == 0:
            return Sample(text="Let me think about it.", finish_reason="stop")
        if "hopeless" in text:
            return Sample(text="No idea.", finish_reason="stop")
        if "broken" in text:
            return Sample(text="", finish_reason="error", error="HTTP 500 after 6 retries")
        return _rate_all(prompt, attempt)

    judge = ScriptedJudge(reply)
    prm = JudgePRM(judge, SamplingSpec(temperature=0))
    items = [("flaky", ["a", "b"]), ("hopeless", ["a"]), ("fine", ["a"]), ("broken", ["a"]), ("empty", [])]
    results = prm.score(items)
    assert results[0].scores == (0.9, 0.8) and results[0].error is None
    assert results[1].scores == () and "unparseable" in (results[1].error or "")
    assert results[2].scores == (0.9,)
    assert results[3].scores == () and "HTTP 500" in (results[3].error or "")
    assert results[4].scores == () and results[4].error is None  # nothing to judge, nothing asked
    assert judge.seen[next(t for t in judge.seen if t.startswith("Question:\nfine"))] == 1
    assert sorted(judge.seen.values()) == [1, 2, 2, 2]  # three retried once, never more
    assert prm.usage.retries == 3 and prm.usage.unscored_traces == 2


def test_long_traces_are_cut_to_max_tokens() -> None:
    judge = ScriptedJudge(_rate_all)
    prm = JudgePRM(judge, SamplingSpec(temperature=0), max_tokens=200)  # about 800 characters
    steps = ["x" * 100] * 10
    (result,) = prm.score([("a question", steps)])
    assert result.truncated and 0 < len(result.scores) < 10
    asked = next(iter(judge.seen))
    assert len(asked) + len(JUDGE_SYSTEM) <= 200 * 4
    assert prm.usage.steps_dropped == 10 - len(result.scores)


def test_make_step_scorer_builds_a_judge_from_the_endpoint() -> None:
    seen: list[Endpoint] = []

    def factory(endpoint: Endpoint) -> ScriptedJudge:
        seen.append(endpoint)
        return ScriptedJudge(_rate_all)

    spec = PrmSpec(kind="llmJudge", endpoint=Endpoint(url="http://judge:8000/v1", model="j"), batch_size=3)
    scorer = make_step_scorer(spec, factory)
    assert isinstance(scorer, JudgePRM) and isinstance(scorer, StepScorer)
    assert seen[0].model == "j" and scorer.batch_size == 3 and scorer.sampling.temperature == 0
    assert scorer.score([("q", ["a", "b"])])[0].scores == (0.9, 0.8)


def test_make_step_scorer_defaults_to_the_http_backend() -> None:
    from adacot.backends.openai_http import OpenAIGenerator

    spec = PrmSpec(kind="llmJudge", endpoint=Endpoint(url="http://judge:8000/v1", model="j"))
    scorer = make_step_scorer(spec)
    assert isinstance(scorer, JudgePRM) and isinstance(scorer.generator, OpenAIGenerator)
    assert scorer.generator.endpoint.url == "http://judge:8000/v1"
    scorer.close()
