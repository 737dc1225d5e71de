"""Train the demo's two tiny Qwen2 models from scratch on synthetic sums: a weak student, a stronger teacher.

Callers: adacot.demo.pipeline. Both models share one byte-level tokenizer (digits single tokens, built by
adacot.testing.tiny_models) and the ChatML template, so the prompts the grading and distillation stages render
are exactly the texts trained on. The loss covers the assistant turn only: with loss on the whole text a
model this small spends its capacity on the (random) questions and learns nothing useful in minutes.

The student answers directly (`\\boxed{n}`) and trains briefly; the teacher writes column sums with
carries in `<think>` and trains longer (adacot.demo.synthetic says why that is easier). A finished
model directory holds `pretrain.json` (the plan, losses, seconds); a directory trained with the same plan
is reused, so a rerun of the demo skips training.

`train_model` trains on the sums; `train` on any `TrainingTask` (an item stream and each item's
question and answer texts), which other synthetic tasks (adacot.demo.code_task) pass.

Limits: a fixed number of optimizer steps, not a time budget, so the result does not depend on how
loaded the machine is; single process; CPU float32.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adacot.demo.synthetic import Sum, direct_answer, step_answer, stream, sums
from adacot.testing.tiny_models import build_tiny_qwen2, build_tokenizer

DONE_NAME = "pretrain.json"
HEAD_DIM = 64
Style = Callable[[Sum], str]


@dataclass(frozen=True)
class PretrainPlan:
    """How one model is built and trained."""

    steps: int
    batch_size: int = 64
    learning_rate: float = 3e-3
    hidden: int = 128
    layers: int = 4
    seed: int = 0
    digit_weights: tuple[float, ...] = (1, 1, 1)


@dataclass(frozen=True)
class TrainingTask:
    """What a model learns, whatever the task: items, and each item's question and answer texts.

    `name` is stored in pretrain.json, so a directory trained on another task is retrained, not reused.
    """

    name: str
    stream: Callable[[int], Iterator[Any]]  # seed -> endless training items
    problem: Callable[[Any], str]  # the user turn
    answer: Callable[[Any], str]  # the assistant turn (what the loss covers)
    corpus: Callable[[], list[str]]  # texts for the shared tokenizer (every answer style)
    vocab_size: int = 320
    extra: dict[str, Any] = field(default_factory=dict)  # task settings recorded next to the plan


def sums_task(style: Style, digit_weights: tuple[float, ...] = (1, 1, 1)) -> TrainingTask:
    """The math demo's task: sums answered in `style`."""
    return TrainingTask(
        name="sums",
        stream=lambda seed: stream(seed, digit_weights=digit_weights),
        problem=lambda s: s.problem,
        answer=style,
        corpus=corpus,
    )


def chat_prompt(problem: str) -> str:
    """The text the grading/distillation stages send for a question (ChatML user turn, assistant opened)."""
    return f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"


def corpus(seed: int = 0, count: int = 2000) -> list[str]:
    """Texts for the shared tokenizer: both answer styles, so their tags become tokens."""
    return chat_texts(sums(count, seed), lambda s: s.problem, (direct_answer, step_answer))


def chat_texts(
    items: list[Any], problem: Callable[[Any], str], styles: tuple[Callable[[Any], str], ...]
) -> list[str]:
    """Each item's whole chat (question, answer in each style, end of turn): a tokenizer corpus."""
    return [chat_prompt(problem(item)) + style(item) + "<|im_end|>\n" for item in items for style in styles]


def in_processes(jobs: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    """Run each (function, args) in its own spawned process, all at once; raise if any fails. Training
    jobs set one torch thread each, so two jobs use the two cores without fighting over them."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=args) for target, args in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if any(w.exitcode != 0 for w in workers):
        raise RuntimeError(f"model training failed (exit codes {[w.exitcode for w in workers]})")


def train_model(
    directory: Path, plan: PretrainPlan, style: Style, *, label: str, log: Callable[[str], None]
) -> Path:
    """Build and train one model on the sums into `directory` unless a finished one is there."""
    return train(directory, plan, sums_task(style, plan.digit_weights), label=label, log=log)


def train(
    directory: Path, plan: PretrainPlan, task: TrainingTask, *, label: str, log: Callable[[str], None]
) -> Path:
    """Build and train one model on `task` into `directory` unless a finished one is there (see above)."""
    done = directory / DONE_NAME
    if done.is_file() and _trained_with(done) == _plan_dict(plan, task):
        log(f"{label}: reusing the trained model in {directory}")
        return directory
    if directory.exists():
        shutil.rmtree(directory)  # half-written by an interrupted run
    build_tokenizer(task.corpus(), directory, vocab_size=task.vocab_size)
    if plan.hidden % HEAD_DIM:
        raise ValueError(f"hidden must be a multiple of {HEAD_DIM}, got {plan.hidden}")
    heads = (
        plan.hidden // HEAD_DIM
    )  # vLLM's Qwen2 takes head_dim = hidden / heads and ignores config.head_dim
    build_tiny_qwen2(
        directory, hidden=plan.hidden, layers=plan.layers, heads=heads, head_dim=HEAD_DIM, seed=plan.seed
    )
    started = time.monotonic()
    losses = _train(directory, plan, task, label)
    report = {
        **_plan_dict(plan, task),
        "final_loss": losses[-1],
        "seconds": round(time.monotonic() - started, 1),
    }
    done.write_text(json.dumps({**report, "losses": losses}, indent=1) + "\n")
    log(f"{label}: {plan.steps} steps in {report['seconds']} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return directory


def _plan_dict(plan: PretrainPlan, task: TrainingTask) -> dict[str, Any]:
    record = {**asdict(plan), "task": task.name, "task_settings": task.extra}
    loaded: dict[str, Any] = json.loads(json.dumps(record))  # tuples as lists, as read from JSON
    return loaded


def _trained_with(done: Path) -> dict[str, Any]:
    """The plan and task a finished model was trained with (a model from another plan is retrained).

    pretrain.json files written before tasks were recorded hold sums models.
    """
    stored = json.loads(done.read_text())
    found = {k: stored.get(k) for k in PretrainPlan.__dataclass_fields__}
    return {**found, "task": stored.get("task", "sums"), "task_settings": stored.get("task_settings", {})}


def _train(directory: Path, plan: PretrainPlan, task: TrainingTask, label: str) -> list[float]:
    """AdamW with warm-up and cosine decay; returns the loss of every step and saves the weights."""
    import torch
    import transformers

    torch.manual_seed(plan.seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.train()
    warmup = max(1, plan.steps // 20)
    batches = _batches(tokenizer, task, task.stream(plan.seed + 1), plan.batch_size)

    def loss() -> Any:
        ids, labels, mask = next(batches)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    losses = optimise(
        model, loss, plan.steps, plan.learning_rate, lambda s: _lr_factor(s, warmup, plan.steps), label
    )
    model.save_pretrained(directory)
    return losses


def optimise(
    model: Any,
    loss: Callable[[], Any],
    steps: int,
    learning_rate: float,
    factor: Callable[[int], float],
    label: str,
) -> list[float]:
    """`steps` AdamW steps (no weight decay, gradients clipped at 1) on `loss()`, the learning rate scaled
    by `factor(step)`, with a progress bar; returns every step's loss. Shared by the models and the PRM."""
    import torch
    from tqdm import tqdm

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses: list[float] = []
    with tqdm(total=steps, desc=f"training {label}", unit="step") as bar:
        for _ in range(steps):
            value = loss()
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(round(value.item(), 4))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
    return losses


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _batches(
    tokenizer: Any, task: TrainingTask, items: Iterator[Any], size: int
) -> Iterator[tuple[Any, Any, Any]]:
    """Right-padded batches; labels are -100 outside the assistant's answer (and its end-of-turn token)."""
    import torch

    pad = tokenizer.pad_token_id
    while True:
        rows = []
        for item in (next(items) for _ in range(size)):
            prompt = tokenizer(chat_prompt(task.problem(item)), add_special_tokens=False)["input_ids"]
            answer = tokenizer(task.answer(item) + "<|im_end|>", add_special_tokens=False)["input_ids"]
            rows.append((prompt + answer, [-100] * len(prompt) + answer))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
        labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
        mask = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
        yield ids, labels, mask


def greedy_accuracy(directory: Path, items: list[Sum], style: Style) -> float:
    """Share of `items` the model answers exactly as `style` would (greedy, transformers); for tuning."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    model: Any = transformers.AutoModelForCausalLM.from_pretrained(directory)
    model.eval()
    right = 0
    for start in range(0, len(items), 64):
        chunk = items[start : start + 64]
        encoded = tokenizer(
            [chat_prompt(s.problem) for s in chunk],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.no_grad():
            out = model.generate(**encoded, max_new_tokens=48, do_sample=False)
        texts = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        right += sum(t.strip() == style(s) for t, s in zip(texts, chunk, strict=True))
    return right / len(items)


if __name__ == "__main__":  # tuning aid: python -m adacot.demo.pretrain DIR STYLE STEPS
    import sys

    target, which, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    chosen = step_answer if which == "teacher" else direct_answer
    import torch

    torch.set_num_threads(1)
    train_model(target, PretrainPlan(steps=steps), chosen, label=which, log=print)
    for digits in (1, 2, 3):
        weights = tuple(1.0 if d == digits else 0.0 for d in (1, 2, 3))
        print(digits, "digits:", greedy_accuracy(target, sums(64, 99, digit_weights=weights), chosen))
