"""The weight-based PRMs on real MATH-500 problems with hand-written multi-step traces, through real
transformers models built in the session (adacot.testing.tiny_prm: random weights, real code paths).

The hand computations rebuild the model input without the PRM classes (their own string formatting and
token search) so an off-by-one in the separator logic, a wrong label or a padding bug shows up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from shared_data import MATH500

from adacot.api.common import ModelSpec
from adacot.api.grading_run import PrmSpec
from adacot.backends.base import StepScorer
from adacot.backends.prm import QWEN_PRM_SYSTEM, DiscriminativePRM, LanguageModelPRM, make_step_scorer
from adacot.stages.steps import split_steps
from adacot.testing.tiny_prm import (
    build_tiny_discriminative_prm,
    build_tiny_math_shepherd_prm,
    build_tiny_remote_code_prm,
)

pytestmark = pytest.mark.integration


# Traces a base model might write, keyed by the start of the MATH-500 problem; some right, some wrong.
TRACES = {
    "If $f(x) = \\frac{3x-2}{x-2}$": (
        "<think>\nWe need $f(-2)$, $f(-1)$ and $f(0)$.\n\n"
        "$f(-2) = \\frac{-8}{-4} = 2$.\n\n$f(-1) = \\frac{-5}{-3} = \\frac{5}{3}$.\n\n"
        "$f(0) = \\frac{-2}{-2} = 1$.\n</think>\n\n"
        "The sum is $2 + \\frac{5}{3} + 1 = \\boxed{\\frac{14}{3}}$."
    ),
    "How many positive whole-number divisors does 196 have?": (
        "Factor: $196 = 2^2 \\cdot 7^2$.\n\nThe number of divisors is $(2+1)(2+1) = 9$.\n\n"
        "So the answer is $\\boxed{9}$."
    ),
    "What is the distance, in units, between the points $(2, -6)$": (
        "The differences are $-6$ and $9$.\n\nThe distance is $\\sqrt{36 + 81} = \\sqrt{117}$.\n\n"
        "Since $117 = 9 \\cdot 13$, we get $3\\sqrt{13}$, but I will say $\\boxed{\\sqrt{117} + 1}$."
    ),
    "Compute: $1-2+3-4+5- \\dots +99-100$.": (
        "Pair the terms: $(1-2) + (3-4) + \\dots + (99-100)$.\n\nThere are 50 pairs, each $-1$.\n\n"
        "Total $= 50$, so $\\boxed{50}$."
    ),
    "Simplify $\\sqrt{242}$.": "$242 = 121 \\cdot 2$, so $\\sqrt{242} = \\boxed{11\\sqrt{2}}$.",
}


@pytest.fixture(scope="module")
def items() -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()]
    out = []
    for start, trace in TRACES.items():
        problem = next(r["problem"] for r in rows if r["problem"].startswith(start))
        out.append((problem, split_steps(trace, "blankLines")))
    assert [len(s) for _, s in out] == [5, 3, 3, 3, 1]
    return out


@pytest.fixture(scope="module")
def prm_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prm")
    return {
        "disc": build_tiny_discriminative_prm(root / "disc", seed=1),
        "lm": build_tiny_math_shepherd_prm(root / "lm", seed=2),
        "remote": build_tiny_remote_code_prm(root / "remote", seed=3),
    }


@pytest.fixture(scope="module")
def disc(prm_dirs: dict[str, Path]) -> DiscriminativePRM:
    return DiscriminativePRM(ModelSpec(path=str(prm_dirs["disc"])), batch_size=1)


@pytest.fixture(scope="module")
def lm(prm_dirs: dict[str, Path]) -> LanguageModelPRM:
    return LanguageModelPRM(ModelSpec(path=str(prm_dirs["lm"])), batch_size=1)


def _check_shapes(scorer: StepScorer, items: list[tuple[str, list[str]]]) -> list[tuple[float, ...]]:
    results = scorer.score(items)
    assert [len(r.scores) for r in results] == [len(steps) for _, steps in items]
    assert all(0.0 <= s <= 1.0 for r in results for s in r.scores)
    assert not any(r.truncated for r in results)
    assert len({s for r in results for s in r.scores}) > 5  # random weights still separate the steps
    return [r.scores for r in results]


def _hand_disc(directory: Path, question: str, steps: list[str]) -> tuple[list[float], list[float]]:
    """Positive-class probability at each separator and, as a control, at the token before it."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    text = (
        f"<|im_start|>system\n{QWEN_PRM_SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        f"<|im_start|>assistant\n{''.join(s + '<extra_0>' for s in steps)}<|im_end|>\n"
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    sep = tokenizer.convert_tokens_to_ids("<extra_0>")
    with torch.no_grad():
        probs = model(input_ids=ids).logits[0].softmax(-1)[:, 1]
    where = (ids[0] == sep).nonzero().flatten()
    return probs[where].tolist(), probs[where - 1].tolist()


def test_discriminative_scores_one_per_step_in_range(
    disc: DiscriminativePRM, items: list[tuple[str, list[str]]]
) -> None:
    _check_shapes(disc, items)
    assert disc.usage.traces == 5 and disc.usage.steps_scored == 15


def test_discriminative_score_is_the_positive_probability_at_each_separator(
    disc: DiscriminativePRM, items: list[tuple[str, list[str]]], prm_dirs: dict[str, Path]
) -> None:
    for (question, steps), result in zip(items, disc.score(items), strict=True):
        expected, before = _hand_disc(prm_dirs["disc"], question, steps)
        assert result.scores == pytest.approx(expected, abs=1e-6)
        assert max(abs(a - b) for a, b in zip(result.scores, before, strict=True)) > 1e-3


def test_scores_are_deterministic_and_batching_changes_nothing(
    disc: DiscriminativePRM,
    lm: LanguageModelPRM,
    items: list[tuple[str, list[str]]],
    prm_dirs: dict[str, Path],
) -> None:
    for one_by_one, kind in ((disc, "disc"), (lm, "lm")):
        cls = type(one_by_one)
        batched = cls(ModelSpec(path=str(prm_dirs[kind])), batch_size=3)
        first = one_by_one.score(items)
        assert one_by_one.score(items) == first
        again = batched.score(items)
        for a, b in zip(first, again, strict=True):
            assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_truncation_drops_the_steps_that_do_not_fit_and_counts_them(
    disc: DiscriminativePRM, items: list[tuple[str, list[str]]], prm_dirs: dict[str, Path]
) -> None:
    full = disc.score(items)
    question, steps = items[0]
    encoded = disc.encode(question, steps)
    cut = encoded.positions[2] + 1  # room for exactly three of the five separators
    short = DiscriminativePRM(ModelSpec(path=str(prm_dirs["disc"])), max_tokens=cut, batch_size=2)
    results = short.score(items)
    assert results[0].truncated and len(results[0].scores) == 3
    assert results[0].scores == pytest.approx(full[0].scores[:3], abs=1e-5)  # causal: prefix unchanged
    dropped = sum(len(s) - len(r.scores) for (_, s), r in zip(items, results, strict=True))
    assert short.usage.steps_dropped == dropped >= 2
    assert short.usage.truncated_traces == sum(r.truncated for r in results) >= 1


def test_edge_items(disc: DiscriminativePRM, items: list[tuple[str, list[str]]]) -> None:
    question, steps = items[1]
    results = disc.score([(question, []), (question, [*steps[:1], "a literal <extra_0> inside"])])
    assert results[0].scores == () and not results[0].truncated
    assert len(results[1].scores) == 2  # the literal separator did not create a phantom step
    assert disc.score([]) == []


def test_language_model_prm_is_p_plus_over_plus_and_minus_at_each_tag(
    lm: LanguageModelPRM, items: list[tuple[str, list[str]]], prm_dirs: dict[str, Path]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_shapes(lm, items)
    tokenizer = AutoTokenizer.from_pretrained(prm_dirs["lm"])
    model: Any = AutoModelForCausalLM.from_pretrained(prm_dirs["lm"])
    model.eval()
    plus, minus = tokenizer.encode("+")[-1], tokenizer.encode("-")[-1]
    tag = tokenizer.encode("ки")[-1]
    for (question, steps), result in zip(items, lm.score(items), strict=True):
        ids = tokenizer(question + " " + "\n".join(s + " ки" for s in steps), return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        at = (ids[0] == tag).nonzero().flatten()
        expected = (logits[at][:, [plus, minus]].softmax(-1)[:, 0]).tolist()
        assert result.scores == pytest.approx(expected, abs=1e-6)


def test_remote_code_prm_loads_through_automodel(
    prm_dirs: dict[str, Path], items: list[tuple[str, list[str]]]
) -> None:
    with pytest.raises(ValueError, match="trustRemoteCode"):
        DiscriminativePRM(ModelSpec(path=str(prm_dirs["remote"])))
    prm = DiscriminativePRM(ModelSpec(path=str(prm_dirs["remote"]), trust_remote_code=True), batch_size=2)
    assert type(prm.model).__name__ == "Qwen2ForProcessRewardModel"
    _check_shapes(prm, items)


@pytest.mark.parametrize(
    ("kind", "cls"), [("discriminative", DiscriminativePRM), ("languageModel", LanguageModelPRM)]
)
def test_make_step_scorer_builds_the_spec(
    kind: str, cls: Any, prm_dirs: dict[str, Path], items: list[tuple[str, list[str]]]
) -> None:
    path = prm_dirs["disc" if kind == "discriminative" else "lm"]
    spec = PrmSpec(kind=kind, model=ModelSpec(path=str(path)), batch_size=4, max_tokens=64)
    scorer = make_step_scorer(spec, device="cpu")
    assert isinstance(scorer, cls) and isinstance(scorer, StepScorer)
    results = scorer.score(items)
    assert all(r.truncated for r in results[:4])  # 64 tokens do not hold these conversations
    scorer.close()
