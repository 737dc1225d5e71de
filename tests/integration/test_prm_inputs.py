"""What the PRM is shown: a code question's conversation carries a code system prompt (not the math one),
`grader.prm.systemPrompt` overrides it, and the PRM's context is capped by the checkpoint's own position
limit. Through the real scorers on tiny transformers PRMs (adacot.testing.tiny_prm) and, for the code
prompt, through the grading pipeline with the real sandboxed code verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adacot.api.common import ModelSpec, TaskType
from adacot.api.generation import Endpoint
from adacot.api.grading_run import GradingRun, PrmSpec
from adacot.artifacts import GradedQuestion, read_records
from adacot.backends.base import Completion, Sample, UsageCounter
from adacot.backends.prm import (
    PRM_CODE_SYSTEM,
    QWEN_PRM_SYSTEM,
    DiscriminativePRM,
    make_step_scorer,
    prm_system_prompt,
)
from adacot.backends.prm_judge import JUDGE_CODE_SYSTEM, JUDGE_SYSTEM
from adacot.pipelines.grading_run import run_grading_run
from adacot.stages.steps import split_steps
from adacot.testing.tiny_prm import build_tiny_discriminative_prm

pytestmark = pytest.mark.integration

PROBLEM = "Write a function f(x) that returns twice x."
TESTS = {"entry_point": "f", "inputs": [[1], [2], [3]], "outputs": [2, 4, 6]}
#: A wrong solution written in steps (blank lines between them), as a reasoning student writes it.
WRONG = (
    "We need to double the input.\n\nAdding x to itself doubles it, so use x + x.\n\n"
    "```python\ndef f(x):\n    return x + 1\n```"
)


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_discriminative_prm(tmp_path_factory.mktemp("prm") / "disc", seed=4)


def _decoded(prm: DiscriminativePRM, question: str, steps: list[str]) -> str:
    return str(prm.tokenizer.decode(prm.encode(question, steps).ids))


def _hand_scores(directory: Path, system: str, steps: list[str]) -> list[float]:
    """The positive-class probability at each separator of the conversation built by hand."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    text = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{PROBLEM}<|im_end|>\n"
        f"<|im_start|>assistant\n{''.join(s + '<extra_0>' for s in steps)}<|im_end|>\n"
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        probs = model(input_ids=ids).logits[0].softmax(-1)[:, 1]
    return probs[(ids[0] == tokenizer.convert_tokens_to_ids("<extra_0>")).nonzero().flatten()].tolist()


def test_system_prompt_defaults_per_task_and_the_spec_overrides_it(prm_dir: Path) -> None:
    spec = PrmSpec(model=ModelSpec(path=str(prm_dir)))
    assert prm_system_prompt(spec, TaskType.math) == QWEN_PRM_SYSTEM
    assert prm_system_prompt(spec, TaskType.code) == PRM_CODE_SYSTEM
    assert "boxed" not in PRM_CODE_SYSTEM and "python" in PRM_CODE_SYSTEM.lower()
    steps = split_steps(WRONG, "blankLines")
    code = make_step_scorer(spec, task=TaskType.code, device="cpu")
    math = make_step_scorer(spec, device="cpu")  # math stays the default task
    assert isinstance(code, DiscriminativePRM) and isinstance(math, DiscriminativePRM)
    assert PRM_CODE_SYSTEM in _decoded(code, PROBLEM, steps)
    assert QWEN_PRM_SYSTEM not in _decoded(code, PROBLEM, steps)
    assert QWEN_PRM_SYSTEM in _decoded(math, PROBLEM, steps)
    own = spec.model_copy(update={"system_prompt": "Judge this program."})
    assert "Judge this program." in _decoded(
        make_step_scorer(own, task=TaskType.code, device="cpu"), PROBLEM, steps
    )
    bare = spec.model_copy(update={"system_prompt": ""})
    assert "<|im_start|>system" not in _decoded(
        make_step_scorer(bare, task=TaskType.code, device="cpu"), PROBLEM, steps
    )


def test_a_graded_code_question_is_scored_with_the_code_prompt(prm_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "c1", "problem": PROBLEM, "tests": TESTS}) + "\n")
    (tmp_path / "r.jsonl").write_text(json.dumps({"id": "c1", "response": WRONG}) + "\n")
    resource = GradingRun.model_validate(
        {
            "kind": "GradingRun",
            "metadata": {"name": "code"},
            "spec": {
                "questions": {"path": str(tmp_path / "q.jsonl"), "task": "code", "fields": {"id": "id"}},
                "model": {"path": "/models/s"},
                "responses": {"path": str(tmp_path / "r.jsonl")},
                "sampling": {"samplesPerQuestion": 1},
                "grader": {"prm": {"model": {"path": str(prm_dir)}}},
                "verification": {"workers": 1},
            },
        }
    )
    run_grading_run(resource, tmp_path / "out")  # the pipeline builds the real PRM from the spec
    (record,) = read_records(tmp_path / "out", GradedQuestion)
    (attempt,) = record.attempts
    assert attempt.verdict is not None and attempt.verdict.reason == "failed_test"
    steps = split_steps(WRONG, "blankLines")
    assert attempt.step_scores == pytest.approx(_hand_scores(prm_dir, PRM_CODE_SYSTEM, steps), abs=1e-6)
    math_scores = _hand_scores(prm_dir, QWEN_PRM_SYSTEM, steps)
    assert max(abs(a - b) for a, b in zip(attempt.step_scores, math_scores, strict=True)) > 1e-4
    assert attempt.prm_truncated is False and record.prm_truncated is False


def test_the_checkpoints_position_limit_caps_the_prm_context(prm_dir: Path, tmp_path: Path) -> None:
    import shutil

    small = tmp_path / "small"
    shutil.copytree(prm_dir, small)
    config = json.loads((small / "config.json").read_text())
    config["max_position_embeddings"] = 128
    (small / "config.json").write_text(json.dumps(config))
    prm = DiscriminativePRM(ModelSpec(path=str(small)), max_tokens=8192)
    assert prm.max_tokens == 128
    steps = [f"Step {i}: 2 + {i} = {i + 2}." for i in range(12)]
    (result,) = prm.score([("What is 2 + 11?", steps)])
    assert result.truncated and 0 < len(result.scores) < len(steps)
    assert len(prm.encode("What is 2 + 11?", steps).ids) == 128
    limited = DiscriminativePRM(ModelSpec(path=str(small), max_model_len=80), max_tokens=8192)
    assert limited.max_tokens == 80  # the smallest of maxTokens, model.maxModelLen and the checkpoint's


class _Judge:
    def __init__(self) -> None:
        self.usage = UsageCounter()
        self.systems: list[str] = []

    def generate(self, prompts, sampling):  # type: ignore[no-untyped-def]
        for i, prompt in enumerate(prompts):
            self.systems.append(prompt.messages[0][1])
            yield Completion(i, (Sample("Step 1: 5\nStep 2: 7", "stop"),))

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("task", "system"), [(TaskType.code, JUDGE_CODE_SYSTEM), (TaskType.math, JUDGE_SYSTEM)]
)
def test_the_llm_judge_is_told_the_task(task: TaskType, system: str) -> None:
    judge = _Judge()
    spec = PrmSpec(kind="llmJudge", endpoint=Endpoint(url="http://judge:8000/v1", model="j"))
    scorer = make_step_scorer(spec, lambda endpoint: judge, task=task)
    assert scorer.score([(PROBLEM, ["a", "b"])])[0].scores == (0.5, 0.7)
    assert judge.systems == [system]
