"""SFTJob: supervised fine-tuning of the base model on the kept chains of thought.

Read by the training stage, the evaluation stage, the operator and the CRD generator. Defaults follow
peers that fine-tune 7B–32B models on a few thousand long CoT samples (s1, LIMO, Light-R1, open-r1):
learning rate 1e-5, cosine schedule, 3 epochs, 16k context, ZeRO-3, loss on assistant tokens only.
GPUs per node come from `resources.gpus`; `nodes` > 1 becomes an Indexed Job with torchrun rendezvous.
Limits: that the base model fits the GPUs is not checked here.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from adacot.api.common import ApiModel, DatasetSpec, LocalObjectReference, ModelSpec
from adacot.api.generation import InferenceSpec, PromptSpec, SamplingSpec, VerificationSpec
from adacot.api.resource import Resource, phase_columns
from adacot.api.rules import cel, check_one_of, immutable, one_of_rule, validations
from adacot.api.status import SFTJobStatus
from adacot.api.workload import SCHEDULING_WHILE_SUSPENDED, CommonSpec


class SftDataset(ApiModel):
    """The training data: a DistillationJob's output or a file."""

    model_config = ConfigDict(
        json_schema_extra=validations(one_of_rule(("distillationJobRef", "path"), "dataset"))
    )

    distillation_job_ref: LocalObjectReference | None = Field(
        default=None, description="A DistillationJob in this namespace."
    )
    path: str | None = Field(default=None, min_length=1, description="A JSONL/Parquet file or directory.")
    format: Literal["messages", "sharegpt", "alpaca"] = Field(
        default="messages", description="Row format of path (a DistillationJob writes messages)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SftDataset:
        check_one_of(self, ("distillationJobRef", "path"), "dataset")
        return self


class LoraSpec(ApiModel):
    """Train LoRA adapters (peft) instead of all weights; the saved model has them merged."""

    r: int = Field(default=16, ge=1, le=1024, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator (alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Adapter dropout.")
    target_modules: list[str] = Field(
        default=["all-linear"],
        min_length=1,
        description="Modules to adapt; all-linear means every linear layer.",
    )


class TrainingSpec(ApiModel):
    """Hyper-parameters."""

    learning_rate: float = Field(
        default=1e-5,
        gt=0,
        le=1e-2,
        description="Peak learning rate (peers use 1e-5 to 5e-5 for full fine-tuning).",
    )
    epochs: float = Field(default=3.0, gt=0, le=100, description="Passes over the data.")
    per_device_batch_size: int = Field(default=1, ge=1, description="Sequences per device per step.")
    gradient_accumulation_steps: int = Field(default=8, ge=1, description="Steps per optimizer update.")
    max_seq_length: int = Field(
        default=16384,
        ge=64,
        le=1_048_576,
        description="Tokens per sequence; longer examples are dropped (and counted), not truncated.",
    )
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        default="cosine", description="Learning-rate schedule."
    )
    warmup_ratio: float = Field(default=0.05, ge=0, le=1, description="Share of steps warming up.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    packing: bool = Field(
        default=True,
        description="Pack examples into full sequences (no attention across "
        "examples where the model supports it).",
    )
    assistant_only_loss: bool = Field(default=True, description="Loss on assistant tokens only.")
    gradient_checkpointing: bool = Field(default=True, description="Recompute activations to save memory.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="auto is bf16 on GPU and fp32 on CPU."
    )
    seed: int = Field(default=0, ge=0, description="Training seed.")
    save_steps: int = Field(default=200, ge=1, description="Checkpoint interval in optimizer steps.")
    save_total_limit: int = Field(default=2, ge=1, description="Checkpoints kept (the newest ones).")
    logging_steps: int = Field(default=10, ge=1, description="Loss logging interval.")
    lora: LoraSpec | None = Field(default=None, description="Train LoRA adapters instead of all weights.")


OFFLOAD_MESSAGE = "deepspeed.offloadParams needs stage 3"


class DeepSpeedSpec(ApiModel):
    """DeepSpeed ZeRO; the config is generated from this and written beside the checkpoint."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.offloadParams) || !self.offloadParams || (has(self.stage) && self.stage == 3)",
                OFFLOAD_MESSAGE,
            )
        )
    )

    stage: Literal[0, 2, 3] = Field(default=3, description="ZeRO stage; 0 trains without DeepSpeed.")
    offload_optimizer: bool = Field(default=False, description="Keep optimizer state in CPU memory.")
    offload_params: bool = Field(default=False, description="Keep parameters in CPU memory (stage 3).")

    @model_validator(mode="after")
    def _offload_needs_stage3(self) -> DeepSpeedSpec:
        if self.offload_params and self.stage != 3:
            raise ValueError(OFFLOAD_MESSAGE)
        return self


class EvalSet(DatasetSpec):
    """A named benchmark file."""

    name: str = Field(min_length=1, description="Benchmark name in reports, e.g. math500.")


class EvaluationSpec(ApiModel):
    """Grade the trained model (and the base model, for comparison) on benchmarks."""

    datasets: list[EvalSet] = Field(min_length=1, description="Benchmarks.")
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(max_tokens=32768),
        description="Decoding; samplesPerQuestion > 1 reports pass@k.",
    )
    prompt: PromptSpec = Field(default_factory=PromptSpec, description="Prompt construction.")
    inference: InferenceSpec = Field(default_factory=InferenceSpec, description="Engine.")
    verification: VerificationSpec = Field(default_factory=VerificationSpec, description="Verifier limits.")
    compare_base: bool = Field(default=True, description="Also evaluate the base model.")


MODEL_MESSAGE = "model is required when dataset is a path (it cannot be read from a DistillationJob)"


class SFTJobSpec(CommonSpec):
    """Fine-tune S on its adaptive chain-of-thought data, then optionally evaluate it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            SCHEDULING_WHILE_SUSPENDED,
            cel("has(self.model) || has(self.dataset.distillationJobRef)", MODEL_MESSAGE),
        )
    )

    dataset: SftDataset = Field(description="Training data.", json_schema_extra=immutable("dataset"))
    model: ModelSpec | None = Field(
        default=None,
        description="Base model; defaults to the model of the bank behind the DistillationJob.",
        json_schema_extra=immutable("model"),
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Hyper-parameters.")
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec, description="ZeRO settings.")
    nodes: int = Field(default=1, ge=1, le=256, description="Nodes; GPUs per node are resources.gpus.")
    master_port: int = Field(default=29500, ge=1024, le=65535, description="torchrun rendezvous port.")
    evaluation: EvaluationSpec | None = Field(default=None, description="Benchmarks after training.")

    @model_validator(mode="after")
    def _model_known(self) -> SFTJobSpec:
        if self.model is None and self.dataset.distillation_job_ref is None:
            raise ValueError(MODEL_MESSAGE)
        return self


class SFTJob(Resource[SFTJobSpec, SFTJobStatus]):
    """Fine-tunes the base model on distilled chain-of-thought."""

    KIND: ClassVar[str] = "SFTJob"
    PLURAL: ClassVar[str] = "sftjobs"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("sft",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]] = phase_columns(
        {
            "name": "Loss",
            "type": "number",
            "jsonPath": ".status.metrics.loss",
            "description": "Final training loss.",
        },
    )

    kind: Literal["SFTJob"] = Field(default="SFTJob", description="SFTJob.")

    def references(self) -> list[tuple[str, str]]:
        ref = self.spec.dataset.distillation_job_ref
        return [("DistillationJob", ref.name)] if ref else []
