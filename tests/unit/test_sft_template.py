"""SFT keeps the reasoning: a real tokenizer (built here) whose chat template, like DeepSeek-R1-Distill-
Qwen's, keeps only what follows `</think>` in assistant turns is refused before training, with an error
naming the model and model.chatTemplate; a model.chatTemplate that renders the content whole replaces
the tokenizer's own, the labelled tokens then hold the reasoning, and the saved model carries it."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from adacot.api.sft_job import SFTJob
from adacot.artifacts.rows import Message, SftExample
from adacot.pipelines.sft_job import PLAN_NAME, make_plan, preflight, run_sft_job
from adacot.testing.tiny_models import CHAT_TEMPLATE, build_tiny_qwen2, build_tokenizer
from adacot.training.data import IGNORE_INDEX, TemplateError, load_tokenizer, reasoning_of
from adacot.training.train import MODEL_DIR, _dataset

REASONING = "Twelve apples shared by three children: twelve divided by three is four."
ANSWER = "Each child gets $\\boxed{4}$ apples."

# The assistant rule of DeepSeek-R1-Distill-Qwen's template (first release: the generation prompt opens
# the assistant turn only), written with this tokenizer's ChatML markers.
R1_DISTILL = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|im_start|>user\n' + message['content'] + '<|im_end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<|im_start|>assistant\n' + content + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The later release opens the think block in the generation prompt as well.
R1_DISTILL_THINKING = R1_DISTILL[: R1_DISTILL.rindex("{% if add_generation_prompt")] + (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def r1_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 whose saved tokenizer carries the R1-distill template."""
    root = tmp_path_factory.mktemp("r1_distill")
    corpus = [f"<think>\n{REASONING}\n</think>\n\n{ANSWER}", "How many apples does each child get?"] * 20
    build_tokenizer(corpus, root, vocab_size=300)
    build_tiny_qwen2(root, hidden=64, layers=1, heads=1, max_positions=256)
    tokenizer = AutoTokenizer.from_pretrained(root)
    tokenizer.chat_template = R1_DISTILL
    tokenizer.save_pretrained(root)
    return root


def dataset(root: Path) -> Path:
    example = SftExample(
        messages=[
            Message(role="user", content="Three children share twelve apples. How many does each get?"),
            Message(role="assistant", content=f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"),
        ],
        question_id="q1",
        source="test",
    )
    path = root / "data.jsonl"
    path.write_text("".join(example.model_dump_json() + "\n" for _ in range(4)))
    return path


def job(model: Path, data: Path, chat_template: str | None = None) -> SFTJob:
    spec_model = {"path": str(model), **({"chatTemplate": chat_template} if chat_template else {})}
    training = {"epochs": 1, "maxSeqLength": 256, "perDeviceBatchSize": 2, "learningRate": 1e-3}
    return SFTJob.model_validate(
        {
            "kind": "SFTJob",
            "metadata": {"name": "sft"},
            "spec": {"dataset": {"path": str(data)}, "model": spec_model, "training": training,
                     "deepspeed": {"stage": 0}, "resources": {"gpus": 0}},
        }
    )  # fmt: skip


@pytest.mark.parametrize("template", [None, R1_DISTILL_THINKING], ids=["r1-distill", "r1-distill-thinking"])
def test_a_template_that_drops_the_reasoning_is_refused_before_training(
    r1_model: Path, tmp_path: Path, template: str | None
) -> None:
    out = tmp_path / "out"
    with pytest.raises(TemplateError) as caught:
        run_sft_job(job(r1_model, dataset(tmp_path), template), out)
    message = str(caught.value)
    assert str(r1_model) in message and "drops the reasoning" in message and "model.chatTemplate" in message
    assert not (out / PLAN_NAME).exists()  # refused in the pre-flight: nothing trained or written


def test_model_chat_template_replaces_the_tokenizers_and_keeps_the_reasoning(
    r1_model: Path, tmp_path: Path
) -> None:
    plan = make_plan(job(r1_model, dataset(tmp_path), CHAT_TEMPLATE), tmp_path / "out", None, None)
    assert plan.chat_template == CHAT_TEMPLATE
    assert preflight(plan)["examples"] == 4
    tokenizer = load_tokenizer(plan.model_path, plan.chat_template)
    rows, _ = _dataset(plan, tokenizer)
    labelled = [
        t for t, label in zip(rows[0]["input_ids"], rows[0]["labels"], strict=True) if label != IGNORE_INDEX
    ]
    assert REASONING in tokenizer.decode(labelled)  # the loss is taken on the chain of thought


def test_the_trained_model_carries_the_template_it_was_trained_with(r1_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_sft_job(job(r1_model, dataset(tmp_path), CHAT_TEMPLATE), out)
    # Evaluating the trained model renders prompts the way it was trained.
    assert AutoTokenizer.from_pretrained(out / MODEL_DIR).chat_template == CHAT_TEMPLATE


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"<think>\n{REASONING}\n</think>\n\n{ANSWER}", REASONING),
        (f"{REASONING}</think>{ANSWER}", REASONING),  # R1 opens the block in the prompt
        (f"<think>\n\n</think>\n\n{ANSWER}", ""),  # answer-only example: nothing to keep
        (ANSWER, ""),
    ],
)
def test_reasoning_of(content: str, expected: str) -> None:
    assert reasoning_of(content) == expected
