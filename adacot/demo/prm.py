"""Train the demo's PRM-Grader: a tiny Qwen2.5-Math-PRM-shaped model on automatically labelled steps.

Callers: adacot.demo.pipeline (the demo) and benchmarks/method.py (the method experiment).

How, in the convention of the real Qwen2.5-Math-PRM-7B: the model is a `Qwen2ForProcessRewardModel`
(remote code, two-layer score head with two classes) whose body starts from the student (the real one
starts from Qwen2.5-Math-7B-Instruct), and its separator `<extra_0>` follows every step. Training
texts are encoded by `adacot.backends.prm.DiscriminativePRM` itself -- the class the grading stage
loads a user's Qwen2.5-Math-PRM-7B with -- so the system prompt, chat template and separator positions
the PRM learns on are exactly those it is scored with. The traces are the student's own sampled
answers (partial results, see adacot.demo.synthetic) to training sums disjoint from every question
set; a step is labelled right when its partial result is right (`step_labels`). Loss: cross-entropy
of the two classes at each separator.

`prm.json` in the model directory holds the plan, the losses and the step-level AUC on held-out
traces (answers to other sums than those trained on); a directory trained with the same plan is
reused. Deterministic for a plan: seeded traces (vLLM's per-prompt seeds), data order and head init.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adacot.demo.pretrain import optimise
from adacot.demo.synthetic import Sum, step_labels, sums
from adacot.stages.steps import split_steps

DONE_NAME = "prm.json"
Trace = tuple[str, list[str], list[bool]]
"""(question, steps, label per step)."""
Encoded = tuple[list[int], list[int], list[bool]]
"""(token ids, separator positions, label per step)."""


@dataclass(frozen=True)
class PrmPlan:
    """How the PRM is trained."""

    questions: int = 3000
    samples: int = 4
    temperature: float = 1.0
    steps: int = 1200
    batch_size: int = 64
    learning_rate: float = 5e-4
    held_out: int = 400
    seed: int = 3


def train_prm(
    directory: Path,
    plan: PrmPlan,
    student: Path,
    *,
    avoid: set[str],
    log: Callable[[str], None],
    generate: Callable[[Path, list[Sum], PrmPlan], list[list[str]]] | None = None,
) -> Path:
    """Train (or reuse) the PRM in `directory` from `student`'s sampled answers to sums not in `avoid`."""
    done = directory / DONE_NAME
    if done.is_file() and json.loads(done.read_text()).get("plan") == _plan_dict(plan, student):
        log(f"PRM: reusing the trained model in {directory}")
        return directory
    if directory.exists():
        shutil.rmtree(directory)
    from adacot.testing.tiny_prm import build_prm_from_lm

    started = time.monotonic()
    items = [s for s in sums(plan.questions + plan.held_out + len(avoid), plan.seed) if s.id not in avoid]
    items = items[: plan.questions + plan.held_out]
    answers = (generate or sample_answers)(student, items, plan)
    traces = labelled(items, answers)
    train_set = [t for t, s in zip(traces, _owners(items, answers), strict=True) if s >= plan.held_out]
    held = [t for t, s in zip(traces, _owners(items, answers), strict=True) if s < plan.held_out]
    build_prm_from_lm(student, directory, seed=plan.seed)
    losses = _fit(directory, plan, train_set)
    auc = step_auc(_scorer(directory), held)
    report = {
        "plan": _plan_dict(plan, student),
        "traces": {"train": len(train_set), "held_out": len(held)},
        "held_out_step_auc": auc,
        "seconds": round(time.monotonic() - started, 1),
        "losses": losses,
    }
    done.write_text(json.dumps(report, indent=1) + "\n")
    seconds = report["seconds"]
    log(f"PRM: {plan.steps} steps on {len(train_set)} traces in {seconds} s, held-out step AUC {auc:.3f}")
    return directory


def _plan_dict(plan: PrmPlan, student: Path) -> dict[str, Any]:
    return {**asdict(plan), "student": str(student.resolve())}


def _owners(items: list[Sum], answers: list[list[str]]) -> list[int]:
    """Index of the question each trace answers (the first `held_out` questions are held out)."""
    return [i for i, texts in enumerate(answers) for _ in texts]


def sample_answers(student: Path, items: list[Sum], plan: PrmPlan) -> list[list[str]]:
    """`plan.samples` answers of the student to each sum, sampled with vLLM (seeded per prompt)."""
    from adacot.api.common import ModelSpec
    from adacot.api.generation import SamplingSpec, VllmOptions
    from adacot.backends.base import Prompt
    from adacot.backends.vllm import VllmGenerator
    from adacot.demo.spec import KV_CACHE_BYTES, MAX_MODEL_LEN

    model = ModelSpec(path=str(student), max_model_len=MAX_MODEL_LEN)
    options = VllmOptions(extra_args=["--kv-cache-memory-bytes", KV_CACHE_BYTES])
    generator = VllmGenerator(model, options, chat=True, batch_size=512)
    sampling = SamplingSpec(
        samples_per_question=plan.samples,
        temperature=plan.temperature,
        top_p=1.0,
        max_tokens=32,
        seed=plan.seed,
    )
    prompts = [Prompt.chat(s.problem) for s in items]
    answers: list[list[str]] = [[] for _ in items]
    try:
        for completion in generator.generate(prompts, sampling):
            answers[completion.index] = [sample.text for sample in completion.samples]
    finally:
        generator.close()
    return answers


def labelled(items: Sequence[Sum], answers: Sequence[Sequence[str]]) -> list[Trace]:
    """Every answer as (question, steps, labels); answers without steps are left out."""
    traces = []
    for item, texts in zip(items, answers, strict=True):
        for text in texts:
            steps = split_steps(text, "newlines")
            traces.append((item.problem, steps, step_labels(item, steps)))
    return traces


def _scorer(directory: Path, batch_size: int = 64) -> Any:
    from adacot.api.common import ModelSpec
    from adacot.backends.prm import DiscriminativePRM

    return DiscriminativePRM(
        ModelSpec(path=str(directory), trust_remote_code=True), batch_size=batch_size, max_tokens=512
    )


def _fit(directory: Path, plan: PrmPlan, traces: list[Trace]) -> list[float]:
    """Cross-entropy at the separators, AdamW, constant rate after a short warm-up; saves the weights."""
    import torch

    torch.manual_seed(plan.seed)
    scorer = _scorer(directory)
    encoded = [
        (e.ids, e.positions, labels)
        for question, steps, labels in traces
        if (e := scorer.encode(question, steps)).positions
    ]
    model = scorer.model.train()
    warmup = max(1, plan.steps // 20)
    order = random.Random(plan.seed)

    def loss() -> Any:
        return _batch_loss(
            torch, model, order.sample(encoded, min(plan.batch_size, len(encoded))), scorer.pad_id
        )

    losses = optimise(
        model, loss, plan.steps, plan.learning_rate, lambda s: min(1.0, (s + 1) / warmup), "the PRM"
    )
    model.eval()
    model.save_pretrained(directory)
    return losses


def _batch_loss(torch: Any, model: Any, batch: list[Encoded], pad: int) -> Any:
    width = max(len(ids) for ids, _, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for row, (tokens, positions, labels) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        rows += [row] * len(positions)
        cols += positions
        targets += [int(v) for v in labels[: len(positions)]]
    logits = model(input_ids=ids, attention_mask=mask)[0]
    return torch.nn.functional.cross_entropy(logits[rows, cols], torch.tensor(targets))


def step_auc(scorer: Any, traces: Sequence[Trace]) -> float:
    """Area under the ROC curve of the PRM's step scores against the step labels (Mann-Whitney, ties
    counted half): the chance a right step outscores a wrong one."""
    scored = scorer.score([(q, steps) for q, steps, _ in traces])
    pairs = [
        (score, label)
        for (_, _, labels), result in zip(traces, scored, strict=True)
        for score, label in zip(result.scores, labels, strict=False)
    ]
    return auc([s for s, right in pairs if right], [s for s, right in pairs if not right])


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive outscores a negative) + half the ties; raises when either side is empty."""
    if not positive or not negative:
        raise ValueError(f"AUC needs right and wrong steps, got {len(positive)} and {len(negative)}")
    ranked = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # average 1-based rank of the tied block
        rank_sum += mid * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def grading_auc(rows: Iterable[Any]) -> float:
    """Step-level AUC of the step scores a grading run stored (GradedQuestion rows of sums): the PRM
    judged through the grading stage itself, on questions it never trained on."""
    right: list[float] = []
    wrong: list[float] = []
    for row in rows:
        a, _, b = row.question.problem.partition("+")
        item = Sum(int(a), int(b))
        for attempt in row.attempts:
            if not attempt.step_scores:
                continue
            labels = step_labels(item, split_steps(attempt.text, "newlines"))
            for score, label in zip(attempt.step_scores, labels, strict=False):
                (right if label else wrong).append(score)
    return auc(right, wrong)
