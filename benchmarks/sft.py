"""SFT throughput: adacot's training stage against TRL's SFTTrainer, packing on and off, in one run.

    python benchmarks/sft.py [--data ../shared/data] [--records 160] [--max-seq-length 512]
                             [--batch-size 4] [--repeats 3] [--threads 1] [--hidden 128]
                             [--quick]

Builds its own tiny Qwen2 (adacot.testing.tiny_models: a byte-level BPE tokenizer trained on the questions and
answers, random weights, seed 0) and chat records from GSM8K (question as the user turn, reference
answer as the assistant turn: real, variable-length conversations). Four configurations train on the
same records, each for one epoch in its own process (so peak RSS is per run):

- adacot packed / unpacked: `adacot.training.train.train` (the SFTJob's training function: chat
  template, assistant-only labels, best-fit-decreasing packing into rows of at most the max length with
  per-sample position_ids, transformers' Trainer);
- TRL packed / unpacked: `trl.SFTTrainer` with `SFTConfig` on the same records as a conversational
  prompt-completion dataset (`completion_only_loss`, TRL's equivalent of assistant-only loss here;
  packing is TRL's default best-fit-decreasing strategy, padding-free).

Matched: model, tokenizer, records (only those that fit --max-seq-length, so neither side drops or
truncates), max sequence length, per-device batch size, one epoch (so the same tokens; packing changes
the number of steps), learning rate and schedule, fp32 on CPU, no gradient checkpointing, no
checkpoints during the run, seeds, torch threads (--threads, default 1: on a 2-core machine shared
with other work, two OpenMP threads per run oversubscribed the cores and made the same run vary 4x; one
thread varies far less, though still by up to 2x under heavy load, hence alternating repeats and
medians). Both trainers' data collators are wrapped by `TokenCounter`, which counts every batch's
tokens as the model receives them: non-padding tokens (ids other than the pad token, which the chat
template never emits) and total tokens (the batch tensor's size).

Attention (recorded per configuration as `attention` and `layout`): every path here runs
transformers' default on CPU, sdpa. adacot packed: rows [batch, longest row], padded, with a
block-diagonal causal mask that transformers builds from the position_ids (no varlen kernel on CPU, so
a row costs attention over its full length, masked blocks included). TRL packed: its padding-free
layout, one flattened row of the whole batch (batch size x max length) with the same position_ids
mask, whose attention grows with the square of that length. Unpacked: padded rows with a padding mask.
On a GPU with flash_attention_2, adacot flattens packed batches into one row too (no padding at all)
and transformers runs flash varlen over cu_seqlens taken from the position_ids, so each sample's
attention costs its own length squared (adacot.training.packing); TRL's flattened rows take the same
kernel. At the default width (hidden 128) attention over 512-token rows costs about as much as the
MLP; --hidden 512 shows a model whose cost is mostly in its linear layers, as in real models.

Figures per configuration, the median of --repeats runs (configurations alternate order between
repeats): the Trainer's train_runtime, non-padding and total tokens/s over it, the non-padding share
(all batches together and the mean per batch), whole-call wall time (data preparation, training and
the final model save), peak RSS and the train loss. Ratios: adacot / TRL at the same packing setting,
and packed / unpacked for each trainer. Prints a markdown table; writes benchmarks/results/sft.json
and sft.md (not with --quick). Timings are wall-clock on a shared machine; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_support import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "sft.json"
CONFIGS = (("adacot", True), ("trl", True), ("adacot", False), ("trl", False))
LAYERS, HEAD_DIM = 4, 64  # head_dim 64, as vLLM's CPU attention needs for the same models elsewhere
LEARNING_RATE = 1e-4
RESULT_PREFIX = "RESULT "


# ---------------------------------------------------------------- token accounting


def batch_tokens(input_ids: Any, pad_id: int) -> tuple[int, int]:
    """(non-padding tokens, total tokens) of one batch tensor of input ids."""
    return int((input_ids != pad_id).sum()), int(input_ids.numel())


class TokenCounter:
    """Wraps a data collator and records each batch's (non-padding, total) tokens as the model sees them.

    Counting at the collator works the same for both trainers whatever their batch layout (padded rows,
    packed rows, TRL's flattened padding-free row), which the Trainer's own token counter does not.
    """

    def __init__(self, inner: Callable[[list[Any]], Any], pad_id: int) -> None:
        self.inner = inner
        self.pad_id = pad_id
        self.batches: list[tuple[int, int]] = []

    def __call__(self, features: list[Any]) -> Any:
        batch = self.inner(features)
        self.batches.append(batch_tokens(batch["input_ids"], self.pad_id))
        return batch


def token_figures(batches: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Totals and non-padding shares (over all tokens, and the mean of the per-batch shares)."""
    real, total = sum(b[0] for b in batches), sum(b[1] for b in batches)
    return {
        "batches": len(batches),
        "non_padding_tokens": real,
        "total_tokens": total,
        "non_padding_share": real / total if total else 0.0,
        "mean_batch_share": statistics.fmean(r / t for r, t in batches) if batches else 0.0,
    }


# ---------------------------------------------------------------- data and model


def gsm8k_conversations(data: Path, limit: int | None = None) -> list[list[dict[str, str]]]:
    """GSM8K test rows as two-turn chats: the question from the user, the reference answer from the
    assistant (calculator annotations and `#### n` kept: real text of varied length)."""
    with (data / "gsm8k_test.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [
        [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]
        for r in rows[:limit]
    ]


def model_sizes(hidden: int) -> dict[str, int]:
    return {"hidden": hidden, "layers": LAYERS, "heads": max(1, hidden // HEAD_DIM), "head_dim": HEAD_DIM}


def prepare(
    data: Path, root: Path, records: int, max_len: int, sizes: dict[str, int]
) -> tuple[Path, Path, dict[str, Any]]:
    """Build the model and write the records that fit `max_len` (adacot's tokenisation) as JSONL."""
    from transformers import AutoTokenizer

    from adacot.testing.tiny_models import build_tiny_lm
    from adacot.training.data import tokenize

    chats = gsm8k_conversations(data)
    corpus = [m["content"] for chat in chats for m in chat]
    model = build_tiny_lm(corpus, root / "model", seed=0, max_positions=max_len, **sizes)
    tokenizer = AutoTokenizer.from_pretrained(model)
    lengths = [(chat, len(tokenize(tokenizer, chat).input_ids)) for chat in chats]
    kept = [(chat, n) for chat, n in lengths if n <= max_len][:records]
    path = root / "records.jsonl"
    path.write_text("".join(json.dumps({"messages": chat}) + "\n" for chat, _ in kept))
    tokens = [n for _, n in kept]
    info = {
        "records": len(kept),
        "tokens": sum(tokens),
        "min": min(tokens),
        "median": statistics.median(tokens),
    }
    return model, path, info | {"max": max(tokens)}


# ---------------------------------------------------------------- one training run (worker process)


def run_adacot(job: dict[str, Any]) -> dict[str, Any]:
    """The SFTJob's training function, with its collator counted."""
    from unittest import mock

    import transformers.trainer  # noqa: F401  (train() imports it lazily; off the clock, as in run_trl)

    from adacot.api.sft_job import DeepSpeedSpec, TrainingSpec
    from adacot.training import train as train_module
    from adacot.training.packing import Collator

    training = TrainingSpec(
        learning_rate=job["lr"], epochs=1, per_device_batch_size=job["batch_size"],
        gradient_accumulation_steps=1, max_seq_length=job["max_len"], lr_scheduler="cosine",
        warmup_ratio=0.05, packing=job["packing"], assistant_only_loss=True, gradient_checkpointing=False,
        precision="fp32", seed=0, save_steps=10**9, logging_steps=10,
    )  # fmt: skip
    plan = train_module.TrainPlan(
        model_path=job["model"], dataset_path=job["records"], out_dir=job["out"],
        training=training, deepspeed=DeepSpeedSpec(stage=0),
    )  # fmt: skip
    counters: list[TokenCounter] = []

    def counted_collator(pad_id: int, *, packing: bool, flatten: bool) -> TokenCounter:
        counters.append(TokenCounter(Collator(pad_id, packing=packing, flatten=flatten), pad_id))
        return counters[-1]

    start = time.perf_counter()
    with mock.patch.object(train_module, "Collator", counted_collator):
        result = train_module.train(plan)
    wall = time.perf_counter() - start
    figures = _figures(counters[0], result["runtime_s"], wall, result["train_loss"], result["global_step"])
    return figures | attention(result["data"]["attention"], job["packing"], result["data"]["padding_free"])


def run_trl(job: dict[str, Any]) -> dict[str, Any]:
    """TRL's SFTTrainer on the same records as a conversational prompt-completion dataset."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    start = time.perf_counter()
    with open(job["records"], encoding="utf-8") as handle:
        chats = [json.loads(line)["messages"] for line in handle]
    dataset = Dataset.from_list([{"prompt": c[:-1], "completion": c[-1:]} for c in chats])
    config = SFTConfig(
        output_dir=job["out"], max_length=job["max_len"], packing=job["packing"], completion_only_loss=True,
        num_train_epochs=1, per_device_train_batch_size=job["batch_size"], gradient_accumulation_steps=1,
        learning_rate=job["lr"], lr_scheduler_type="cosine", warmup_steps=0.05, gradient_checkpointing=False,
        bf16=False, use_cpu=True, seed=0, data_seed=0, save_strategy="no", logging_steps=10,
        report_to="none", disable_tqdm=True,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32)
    model.config.use_cache = False
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    counter = TokenCounter(trainer.data_collator, tokenizer.pad_token_id)
    trainer.data_collator = counter
    output = trainer.train()
    trainer.save_model(str(Path(job["out"]) / "model"))
    wall = time.perf_counter() - start
    metrics = output.metrics
    figures = _figures(
        counter, metrics["train_runtime"], wall, metrics["train_loss"], trainer.state.global_step
    )
    flattened = bool(trainer.padding_free)  # TRL's collator flattens bfd-packed batches
    return figures | attention(model.config._attn_implementation, job["packing"], flattened)


def attention(implementation: str, packing: bool, flattened: bool) -> dict[str, str]:
    """The attention implementation a run used and the layout of its batches."""
    if flattened:
        layout = "one flattened row per batch, samples marked by position_ids"
    elif packing:
        layout = "padded rows of packed samples, samples marked by position_ids"
    else:
        layout = "padded rows, one sample each, padding mask"
    return {"attention": implementation, "layout": layout}


def _figures(counter: TokenCounter, train_s: float, wall_s: float, loss: float, steps: int) -> dict[str, Any]:
    tokens = token_figures(counter.batches)
    return {
        **tokens,
        "train_s": train_s,
        "wall_s": wall_s,
        "non_padding_tokens_per_s": tokens["non_padding_tokens"] / train_s,
        "total_tokens_per_s": tokens["total_tokens"] / train_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_loss": loss,
        "steps": steps,
    }


def worker(job_json: str) -> None:
    job = json.loads(job_json)
    result = (run_adacot if job["engine"] == "adacot" else run_trl)(job)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the comparison (parent process)


def run_once(job: dict[str, Any]) -> dict[str, Any]:
    """One configuration in a fresh interpreter (imports, memory and peak RSS of its own)."""
    name = f"{job['engine']} {'packed' if job['packing'] else 'unpacked'}"
    print(f"[sft bench] {name} ...", file=sys.stderr, flush=True)
    threads = str(job["threads"])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True, text=True, env=env, timeout=1800, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    print(f"[sft bench]   {result['non_padding_tokens_per_s']:.0f} non-padding tokens/s", file=sys.stderr)
    return result


def compare(model: Path, records: Path, root: Path, args: argparse.Namespace) -> dict[str, list[Any]]:
    """Every configuration `repeats` times, in forward then reverse order alternately."""
    runs: dict[str, list[Any]] = {}
    for repeat in range(args.repeats):
        for engine, packing in CONFIGS if repeat % 2 == 0 else CONFIGS[::-1]:
            key = config_key(engine, packing)
            job = {
                "engine": engine, "packing": packing, "model": str(model), "records": str(records),
                "out": str(root / f"{key}-{repeat}"), "max_len": args.max_seq_length,
                "batch_size": args.batch_size, "lr": LEARNING_RATE, "threads": args.threads,
            }  # fmt: skip
            runs.setdefault(key, []).append(run_once(job))
    return runs


def config_key(engine: str, packing: bool) -> str:
    return f"{engine}-{'packed' if packing else 'unpacked'}"


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians of every figure per configuration, and the ratios of non-padding tokens/s."""
    median = {key: {f: _median([r[f] for r in rs]) for f in rs[0]} for key, rs in runs.items()}
    rate = {key: m["non_padding_tokens_per_s"] for key, m in median.items()}
    ratios = {
        "adacot/trl packed": rate["adacot-packed"] / rate["trl-packed"],
        "adacot/trl unpacked": rate["adacot-unpacked"] / rate["trl-unpacked"],
        "adacot packed/unpacked": rate["adacot-packed"] / rate["adacot-unpacked"],
        "trl packed/unpacked": rate["trl-packed"] / rate["trl-unpacked"],
    }
    trained = sorted({r["non_padding_tokens"] for rs in runs.values() for r in rs})
    return {"median": median, "ratios": ratios, "non_padding_tokens_trained": trained}


def _median(values: list[Any]) -> Any:
    # Descriptions (attention, layout) are the same in every run of a configuration.
    if isinstance(values[0], str):
        if len(set(values)) != 1:
            raise RuntimeError(f"runs of one configuration differ: {sorted(set(values))}")
        return values[0]
    return statistics.median(values)


def table(summary: dict[str, Any], repeats: int) -> str:
    lines = [
        "| trainer | packing | train s | non-padding tok/s | total tok/s "
        "| non-padding share (all / per batch) | steps | wall s | peak RSS MiB | train loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, packing in CONFIGS:
        m = summary["median"][config_key(engine, packing)]
        label = "adacot (stages.train)" if engine == "adacot" else "TRL SFTTrainer"
        lines.append(
            f"| {label} | {'on' if packing else 'off'} | {m['train_s']:.1f} "
            f"| {m['non_padding_tokens_per_s']:.0f} | {m['total_tokens_per_s']:.0f} "
            f"| {m['non_padding_share']:.1%} / {m['mean_batch_share']:.1%} "
            f"| {m['steps']:.0f} | {m['wall_s']:.1f} | {m['peak_rss_mib']:.0f} | {m['train_loss']:.3f} |"
        )
    trained = summary["non_padding_tokens_trained"]
    same = (
        f"the same {trained[0]} non-padding tokens" if len(trained) == 1 else f"DIFFERENT tokens: {trained}"
    )
    lines.append("")
    lines.append(
        f"Every run trained {same}. Ratios of non-padding tokens/s (medians of {repeats} runs each):"
    )
    lines.append("")
    lines += [f"- {name}: **{value:.2f}x**" for name, value in summary["ratios"].items()]
    lines += ["", "Attention and batch layout:", ""]
    for engine, packing in CONFIGS:
        m = summary["median"][config_key(engine, packing)]
        lines.append(f"- {config_key(engine, packing)}: {m['attention']}, {m['layout']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--records", type=int, default=160, help="GSM8K conversations to train on.")
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4, help="Rows per step, both trainers.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each configuration.")
    parser.add_argument(
        "--hidden", type=int, default=128, help="Model width (4 layers); 512 makes the MLP dominate."
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (see the docstring).")
    parser.add_argument("--quick", action="store_true", help="32 records, 1 repeat; no files written.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.quick:
        args.records, args.repeats = 32, 1
    info = machine()
    for package in ("trl", "datasets", "accelerate"):
        info["versions"][package] = _version(package)
    with tempfile.TemporaryDirectory(prefix="adacot-bench-sft-") as tmp:
        sizes = model_sizes(args.hidden)
        model, records, data = prepare(args.data, Path(tmp), args.records, args.max_seq_length, sizes)
        summary = summarise(compare(model, records, Path(tmp), args))
    info["load_after"] = os.getloadavg()[0]
    settings = {
        k: getattr(args, k) for k in ("records", "max_seq_length", "batch_size", "repeats", "threads")
    }
    settings |= {"model": sizes, "learning_rate": LEARNING_RATE, "data": data}
    header = _header(info, settings)
    text = table(summary, args.repeats)
    print(header + "\n\n" + text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": info, "settings": settings, **summary}, indent=2) + "\n")
        RESULTS.with_suffix(".md").write_text(header + "\n\n" + text + "\n")


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _header(info: dict[str, Any], settings: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    data, sizes = settings["data"], settings["model"]
    return (
        f"machine: {info['cpu']}, {info['cpus']} CPUs shared with other engineers' work, Python "
        f"{info['python']}, load average {info['load_before']:.2f} at start, "
        f"{info['load_after']:.2f} at the end\n\nversions: {versions}\n\n"
        f"data: {data['records']} GSM8K conversations, {data['tokens']} tokens (min {data['min']}, median "
        f"{data['median']:.0f}, max {data['max']}); model: tiny Qwen2 (hidden {sizes['hidden']}, "
        f"{sizes['layers']} layers), fp32 CPU; max sequence length {settings['max_seq_length']}, batch size "
        f"{settings['batch_size']}, one epoch, learning rate {settings['learning_rate']}, "
        f"{settings['threads']} torch thread(s) per run"
    )


if __name__ == "__main__":
    main()
