"""The DeepSpeed config generated from DeepSpeedSpec: stage 0 is none, ZeRO-2/3 and offload tables, the
"auto" values transformers fills in, and DeepSpeed's own parser accepting the filled config."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from adacot.api.sft_job import DeepSpeedSpec
from adacot.training.deepspeed_config import deepspeed_config

CPU = {"device": "cpu", "pin_memory": True}


def test_stage0_trains_without_deepspeed() -> None:
    assert deepspeed_config(DeepSpeedSpec(stage=0)) is None


@pytest.mark.parametrize(
    ("spec", "zero"),
    [
        ({"stage": 2}, {"stage": 2, "allgather_partitions": True, "reduce_scatter": True}),
        ({"stage": 2, "offloadOptimizer": True}, {"stage": 2, "offload_optimizer": CPU}),
        (
            {"stage": 3},
            {
                "stage": 3,
                "stage3_gather_16bit_weights_on_model_save": True,
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
            },
        ),
        (
            {"stage": 3, "offloadOptimizer": True, "offloadParams": True},
            {"stage": 3, "offload_optimizer": CPU, "offload_param": CPU},
        ),
    ],
)
def test_zero_sections(spec: dict[str, Any], zero: dict[str, Any]) -> None:
    config = deepspeed_config(DeepSpeedSpec.model_validate(spec))
    assert config is not None
    section = config["zero_optimization"]
    assert section | zero == section  # every expected key, with its value
    assert ("offload_optimizer" in section) == bool(spec.get("offloadOptimizer"))
    assert ("offload_param" in section) == bool(spec.get("offloadParams"))
    assert ("stage3_gather_16bit_weights_on_model_save" in section) == (spec["stage"] == 3)
    json.dumps(config)  # written beside the checkpoints as JSON


def test_hyper_parameters_come_from_the_trainer() -> None:
    config = deepspeed_config(DeepSpeedSpec(stage=3))
    assert config is not None
    for key in (
        "train_micro_batch_size_per_gpu",
        "train_batch_size",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert config[key] == "auto"
    assert config["bf16"] == {"enabled": "auto"} and config["fp16"] == {"enabled": "auto"}
    assert "optimizer" not in config and "scheduler" not in config  # the Trainer's AdamW and schedule
    assert config["zero_allow_untested_optimizer"] is True


def test_offloading_parameters_needs_stage3() -> None:
    with pytest.raises(ValidationError, match="offloadParams needs stage 3"):
        DeepSpeedSpec(stage=2, offload_params=True)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_parses_the_filled_config(stage: int) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    config = deepspeed_config(DeepSpeedSpec(stage=stage, offload_optimizer=True))
    assert config is not None
    # What transformers' HfTrainerDeepSpeedConfig does with the "auto" values, for one CPU rank.
    filled = json.loads(json.dumps(config).replace('"auto"', "null"))
    filled |= {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 4,
        "train_batch_size": 8,
        "gradient_clipping": 1.0,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
    }
    filled["zero_optimization"] = {k: v for k, v in filled["zero_optimization"].items() if v is not None}
    parsed = DeepSpeedConfig(filled, mpu=None)
    assert parsed.zero_optimization_stage == stage
    assert parsed.zero_config.offload_optimizer is not None
    assert parsed.gradient_accumulation_steps == 4
