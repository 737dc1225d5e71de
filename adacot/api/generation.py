"""Blocks shared by the generating stages (grading, distillation, evaluation): endpoints, sampling,
prompts, the inference engine and the Result-Verifier's limits.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from adacot.api.common import ApiModel, SecretRef
from adacot.api.quantity import QUANTITY, quantity_bytes
from adacot.api.rules import cel, validations


class Endpoint(ApiModel):
    """An OpenAI-compatible server: the DeepSeek API, an in-cluster vLLM or SGLang service, ..."""

    url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Base URL including /v1, e.g. http://teacher.llm.svc:8000/v1.",
    )
    model: str = Field(min_length=1, description="Model name sent in each request.")
    api: Literal["chat", "completions"] = Field(
        default="chat",
        description="chat uses /chat/completions "
        "with the server's chat template; completions sends raw "
        "prompts.",
    )
    api_key: SecretRef | None = Field(
        default=None, description="Secret holding the API key (sent as a Bearer token)."
    )
    timeout_seconds: float = Field(
        default=600.0, gt=0, le=86400, description="Per-request timeout; long chains of thought take minutes."
    )
    concurrency: int = Field(default=32, ge=1, le=4096, description="Requests in flight at once.")
    requests_per_minute: int | None = Field(default=None, ge=1, description="Client-side request rate limit.")
    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="Client-side token rate limit (prompt + completion)."
    )
    max_retries: int = Field(
        default=6,
        ge=0,
        le=100,
        description="Retries per request on 429, 5xx, "
        "timeouts and dropped connections (exponential backoff with jitter, honouring "
        "Retry-After).",
    )


class SamplingSpec(ApiModel):
    """Decoding settings. Defaults follow DeepSeek-R1's recommendation for reasoning models."""

    samples_per_question: int = Field(
        default=1, ge=1, le=1024, description="Samples per question (k); was `n` before issue 16."
    )
    temperature: float = Field(default=0.6, ge=0, le=2, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: int | None = Field(default=None, ge=1, description="Keep only the k most likely tokens.")
    max_tokens: int = Field(
        default=16384,
        ge=1,
        le=1_048_576,
        description="Completion length cap; an answer cut by it has finish reason length.",
    )
    seed: int = Field(
        default=0,
        ge=0,
        description="Base seed; each question's seed derives from it "
        "and the question id, so shards give the same result.",
    )
    stop: list[str] = Field(default_factory=list, description="Stop strings.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        """`n` became samplesPerQuestion (an unquoted `n:` is false to YAML 1.1 readers such as kubectl):
        name the new field instead of pydantic's bare "extra inputs are not permitted"."""
        if isinstance(data, dict) and "n" in data:
            raise ValueError("sampling.n is now sampling.samplesPerQuestion (see docs/api-changes.md)")
        return data


class PromptSpec(ApiModel):
    """How a question becomes a prompt."""

    system: str | None = Field(
        default=None, description="System message; none by default (R1-style models are tuned without one)."
    )
    instruction: str | None = Field(
        default=None,
        description="Answer-format instruction appended to the "
        "question; defaults per task (math: put the final answer in \\boxed{}; "
        "code: answer with one fenced python block).",
    )
    use_chat_template: bool = Field(default=True, description="Render through the model's chat template.")


class VllmOptions(ApiModel):
    """Engine settings for an in-pod vLLM (offline engine or server)."""

    tensor_parallel_size: int = Field(default=1, ge=1, le=64, description="GPUs one model copy spans.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Share of GPU memory vLLM may take."
    )
    max_num_seqs: int | None = Field(default=None, ge=1, description="Sequences batched at once.")
    enforce_eager: bool = Field(default=False, description="Disable CUDA graphs (slower, less memory).")
    extra_args: list[str] = Field(
        default_factory=list, description="Extra engine arguments, in `vllm serve` flag form."
    )


class InferenceSpec(ApiModel):
    """How the graded model generates: vLLM in the pod, an endpoint serving it, or transformers."""

    engine: Literal["vllm", "http", "transformers"] = Field(
        default="vllm",
        description="vllm runs the "
        "offline engine in the pod; http calls endpoint; "
        "transformers is the small fallback.",
    )
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="vLLM engine settings.")
    endpoint: Endpoint | None = Field(default=None, description="The server to call when engine is http.")
    batch_size: int = Field(
        default=256,
        ge=1,
        description="Prompts handed to the engine at once (also the unit of resumable progress).",
    )

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(has(self.engine) && self.engine == 'http') == has(self.endpoint)",
                "inference: endpoint must be set when engine is http, and only then",
            )
        )
    )

    @model_validator(mode="after")
    def _endpoint_iff_http(self) -> InferenceSpec:
        if (self.engine == "http") != (self.endpoint is not None):
            raise ValueError("inference: endpoint must be set when engine is http, and only then")
        return self


class VerificationSpec(ApiModel):
    """Result-Verifier limits (see adacot.verify)."""

    math_timeout_seconds: float = Field(
        default=5.0, gt=0, le=600, description="Time allowed to parse and compare one math answer."
    )
    code_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="Wall time allowed for one program against all its tests."
    )
    code_memory: str = Field(
        default="1Gi",
        pattern=QUANTITY,
        description="Memory (address-space) limit of a sandboxed program, a Kubernetes quantity of at "
        "least 64Mi; was `codeMemoryMb` (an integer of MiB) before issue 16.",
    )
    workers: int = Field(default=4, ge=1, le=256, description="Verifier worker processes.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "codeMemoryMb" in data:
            raise ValueError(
                "verification.codeMemoryMb is now verification.codeMemory, a quantity such as 1Gi "
                "(see docs/api-changes.md)"
            )
        return data

    @field_validator("code_memory")
    @classmethod
    def _at_least_64_mib(cls, value: str) -> str:
        if quantity_bytes(value) < 64 << 20:
            raise ValueError(f"codeMemory {value} is below 64Mi, too little for the Python interpreter")
        return value

    @property
    def code_memory_bytes(self) -> int:
        """codeMemory in bytes, the sandbox's address-space limit."""
        return quantity_bytes(self.code_memory)
