"""The DeepSpeed config an SFTJob trains with, generated from its DeepSpeedSpec.

Callers: adacot.training.train (passes it to transformers' TrainingArguments and writes it as
`deepspeed_config.json` beside the checkpoints) and tests.

Batch sizes, learning rate, gradient clipping and precision are "auto": transformers' DeepSpeed
integration fills them from TrainingArguments, so the spec's hyper-parameters have one source. No
optimizer or scheduler section is written: the Trainer's AdamW and schedule are used under every stage
(ZeRO partitions a client optimizer too; `zero_allow_untested_optimizer` says so), which keeps stage 0
and stages 2/3 numerically comparable. Stage 3 gathers the 16-bit weights on save so the final model
directory holds ordinary safetensors that vLLM loads.

Limits: CPU offload of the optimizer uses DeepSpeed's CPU Adam kernel, compiled on first use (needs a
compiler in the image); NVMe offload is not offered.
"""

from __future__ import annotations

from typing import Any

from adacot.api.sft_job import DeepSpeedSpec

CONFIG_NAME = "deepspeed_config.json"


def _offload(device: str = "cpu") -> dict[str, Any]:
    # Pinned host memory makes the transfers asynchronous; it is what DeepSpeed's examples use.
    return {"device": device, "pin_memory": True}


def _zero(spec: DeepSpeedSpec) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "stage": spec.stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if spec.stage == 3:
        zero |= {
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        }
    else:
        zero |= {"allgather_partitions": True, "reduce_scatter": True}
    if spec.offload_optimizer:
        zero["offload_optimizer"] = _offload()
    if spec.offload_params:
        zero["offload_param"] = _offload()
    return zero


def deepspeed_config(spec: DeepSpeedSpec) -> dict[str, Any] | None:
    """The config for `spec`, or None for stage 0 (train without DeepSpeed)."""
    if spec.stage == 0:
        return None
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": _zero(spec),
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1_000_000,  # the Trainer logs; DeepSpeed's own prints would duplicate them
        "wall_clock_breakdown": False,
    }
