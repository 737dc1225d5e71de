"""The SFT training run: one process of it (rank 0 of one, or one rank under torchrun).

Callers: adacot.pipelines.sft_job (in-process for a single process, else `torchrun ... -m
adacot.training.train PLAN.json` on every node) and tests.

Why transformers' Trainer and not TRL's SFTTrainer: the things SFTTrainer would add are done here in a
few explicit lines (adacot.training.data: chat-template rendering, assistant-only labels that work
with templates lacking `{% generation %}` markers, such as ChatML; adacot.training.packing:
best-fit-decreasing packing with position_ids, flattened for flash-attention), while the
Trainer brings what matters for the job — DeepSpeed ZeRO, gradient accumulation and checkpointing,
resume, schedules — with one dependency less pinned against transformers 5.

Precision: `auto` is bf16 on a GPU and fp32 on CPU. Checkpoints go to `checkpoints/` every save_steps
(the newest save_total_limit kept); a rerun resumes from the newest one and its global step continues.
The final model goes to `model/` with the tokenizer (chat template included) and generation config, as
safetensors that vLLM loads directly; LoRA adapters are merged into the base weights first.

Limits: ranks share one output directory (a shared volume across nodes, as the Trainer expects for
checkpoints); the dataset is tokenised in memory by every rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from adacot.api.sft_job import DeepSpeedSpec, TrainingSpec
from adacot.artifacts.manifest import atomic_write_bytes
from adacot.training.data import TokenizeStats, load_tokenizer, read_conversations, tokenize_all
from adacot.training.deepspeed_config import CONFIG_NAME, deepspeed_config
from adacot.training.packing import Collator, build_rows, padding_free, padding_share

CHECKPOINTS, MODEL_DIR, ADAPTER_DIR, RESULT_NAME = "checkpoints", "model", "adapter", "train_result.json"


class TrainPlan(BaseModel):
    """Everything one training process needs; written as JSON by the pipeline for torchrun workers."""

    model_config = ConfigDict(extra="forbid")

    model_path: str
    chat_template: str | None = None
    """ModelSpec.chatTemplate: replaces the tokenizer's own for rendering (and in the saved model)."""
    dataset_path: str
    dataset_format: str = "messages"
    out_dir: str
    training: TrainingSpec
    deepspeed: DeepSpeedSpec


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def precision_of(training: TrainingSpec) -> str:
    """The precision to train in: auto is bf16 on a GPU, fp32 on CPU; fp16 without a GPU is an error."""
    import torch

    gpu = torch.cuda.is_available()
    if training.precision == "auto":
        return "bf16" if gpu else "fp32"
    if training.precision == "fp16" and not gpu:
        raise ValueError("training.precision fp16 needs a GPU (use auto or fp32 on CPU)")
    return training.precision


def _cpu_backend(deepspeed: bool) -> str | None:
    # gloo for CPU ranks; a lone process without DeepSpeed needs no process group at all.
    return "gloo" if deepspeed or int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def _arguments(plan: TrainPlan, out: Path) -> Any:
    import torch
    from transformers import TrainingArguments

    t, precision, gpu = plan.training, precision_of(plan.training), torch.cuda.is_available()
    config = deepspeed_config(plan.deepspeed)
    if config is not None and not gpu:
        # On CPU the Trainer's device set-up leaves deepspeed.comm uninitialised, and ZeRO-3's
        # partitioned loading would then see a world of one; start it on gloo first.
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    if config is not None and _rank() == 0:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / CHECKPOINTS / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=min(t.warmup_ratio, 0.999),  # a float below 1 is a ratio of the total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=t.gradient_checkpointing,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        report_to="none",
        remove_unused_columns=False,  # the collator builds position_ids; nothing to drop
        include_num_input_tokens_seen="non_padding",
        deepspeed=config,
        use_cpu=not gpu,
        ddp_backend=_cpu_backend(config is not None) if not gpu else None,
        disable_tqdm=True,
    )


def _model(plan: TrainPlan, precision: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    model = AutoModelForCausalLM.from_pretrained(plan.model_path, dtype=dtype)
    model.config.use_cache = False  # no KV cache in training; packing's mask needs it off (sft_data)
    lora = plan.training.lora
    if lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = "all-linear" if lora.target_modules == ["all-linear"] else lora.target_modules
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    if plan.training.gradient_checkpointing:
        # Checkpointed frozen embeddings would cut the graph to the adapters.
        model.enable_input_require_grads()  # type: ignore[no-untyped-call]
    return get_peft_model(model, config)


def _dataset(plan: TrainPlan, tokenizer: Any) -> tuple[list[dict[str, list[int]]], dict[str, Any]]:
    t, stats = plan.training, TokenizeStats()
    conversations = read_conversations(Path(plan.dataset_path), plan.dataset_format)
    items = tokenize_all(
        tokenizer, conversations, t.max_seq_length, assistant_only=t.assistant_only_loss, stats=stats
    )
    if not items:
        raise ValueError(f"{plan.dataset_path}: no example fits maxSeqLength {t.max_seq_length} ({stats})")
    rows = build_rows(items, t.max_seq_length, packing=t.packing)
    share = padding_share(rows, t.per_device_batch_size)
    return [r.as_dict() for r in rows], {**stats.as_dict(), "rows": len(rows), "non_padding_share": share}


def _collator(training: TrainingSpec, tokenizer: Any, attention: str, data: dict[str, Any]) -> Collator:
    """Packed batches flattened into one row for flash-attention, padded rows otherwise (training.packing);
    `data` records the attention implementation and the layout."""
    flatten = training.packing and padding_free(attention)
    data |= {"attention": attention, "padding_free": flatten}
    if flatten:
        data["non_padding_share"] = 1.0  # one row of every batch's tokens: no padding at all
    return Collator(tokenizer.pad_token_id, packing=training.packing, flatten=flatten)


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint under out/checkpoints, if any.

    A kill during a save leaves a `checkpoint-N` directory without its `trainer_state.json` (the
    Trainer writes that file after the weights, optimizer and scheduler); transformers'
    `get_last_checkpoint` would still pick it and the resume would fail, so such directories are passed
    over and the one before is used.
    """
    directory = out / CHECKPOINTS
    if not directory.is_dir():
        return None
    complete = [
        (int(path.name.split("-")[1]), path)
        for path in directory.glob("checkpoint-*")
        if path.name.split("-")[1].isdigit() and (path / "trainer_state.json").is_file()
    ]
    return str(max(complete)[1]) if complete else None


def train(plan: TrainPlan) -> dict[str, Any]:
    """Train (resuming from the newest checkpoint), save the final model; returns the run's figures."""
    from transformers import Trainer, set_seed

    from adacot.training.progress import status_progress

    out = Path(plan.out_dir)
    set_seed(plan.training.seed)
    tokenizer = load_tokenizer(plan.model_path, plan.chat_template)
    rows, data = _dataset(plan, tokenizer)
    args = _arguments(plan, out)  # before the model: ZeRO-3 partitions it while loading
    model = _model(plan, precision_of(plan.training))
    collator = _collator(plan.training, tokenizer, str(model.config._attn_implementation), data)
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, data_collator=collator, processing_class=tokenizer
    )
    progress = status_progress(_rank())
    if progress is not None:
        trainer.add_callback(progress)
    resumed = last_checkpoint(out)
    output = trainer.train(resume_from_checkpoint=resumed)
    _save(trainer, plan, out, tokenizer)
    result = _result(trainer, output.metrics, data, resumed, precision_of(plan.training))
    if _rank() == 0:
        atomic_write_bytes(out / RESULT_NAME, (json.dumps(result, indent=2) + "\n").encode())
    return result


def _save(trainer: Any, plan: TrainPlan, out: Path, tokenizer: Any) -> None:
    trainer.model.config.use_cache = True  # the saved model is for inference
    if plan.training.lora is None:
        trainer.save_model(str(out / MODEL_DIR))  # gathers ZeRO-3 shards; saves the tokenizer too
        return
    trainer.save_model(str(out / ADAPTER_DIR))
    if _rank() == 0:
        merge_adapter(plan.model_path, out / ADAPTER_DIR, out / MODEL_DIR, tokenizer)


def merge_adapter(base: str, adapter: Path, target: Path, tokenizer: Any) -> None:
    """Base weights + LoRA adapter -> one ordinary model directory (loaded on CPU, whatever the stage)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def _result(
    trainer: Any, metrics: dict[str, Any], data: dict[str, Any], resumed: str | None, precision: str
) -> dict[str, Any]:
    state = trainer.state
    losses = [
        {
            "step": e["step"],
            "loss": e["loss"],
            "epoch": e.get("epoch"),
            "learning_rate": e.get("learning_rate"),
        }
        for e in state.log_history
        if "loss" in e
    ]
    # The Trainer keeps the count restored from the checkpoint privately; this run's tokens are the rest.
    tokens = state.num_input_tokens_seen - trainer._initial_num_input_tokens_seen
    runtime = float(metrics.get("train_runtime", 0.0))
    return {
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epoch": state.epoch,
        "resumed_from": Path(resumed).name if resumed else None,
        "losses": losses,
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": metrics.get("train_loss"),
        "runtime_s": runtime,
        "tokens_this_run": tokens,
        "tokens_per_s": tokens / runtime if runtime else None,
        "world_size": trainer.args.world_size,
        "precision": precision,
        "data": data,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m adacot.training.train PLAN.json`: the torchrun worker entry point."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m adacot.training.train PLAN.json", file=sys.stderr)
        return 2
    train(TrainPlan.model_validate_json(Path(args[0]).read_text()))
    leave_process_group()
    return 0


def leave_process_group() -> None:
    """Wait for every rank, then tear the group down. Ranks that exit with the group (gloo, DeepSpeed's
    shared-memory channel) still alive can abort at interpreter shutdown ("terminate called without an
    active exception"), and torchrun then kills the others, rank 0 perhaps mid-write."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
