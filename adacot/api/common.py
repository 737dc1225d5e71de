"""Building blocks shared by the four resource specs.

Every model is camelCase on the wire (Kubernetes convention) and snake_case in Python; unknown fields
are rejected so that a typo in a YAML file is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from adacot.api.rules import cel, check_one_of, immutable, one_of_rule, validations


class ApiModel(BaseModel):
    """Base of every spec model: camelCase aliases, no unknown fields, validated on assignment."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        use_attribute_docstrings=True,
    )


class TaskType(str, Enum):
    """What kind of question a dataset holds, which decides the Result-Verifier."""

    math = "math"
    code = "code"


class BadRowPolicy(str, Enum):
    """What to do with an input row that cannot be parsed or lacks a required field."""

    fail = "fail"
    quarantine = "quarantine"


class FieldMapping(ApiModel):
    """Names of the fields in the source rows; the defaults follow MATH-500 and MBPP+."""

    id: str | None = Field(
        default=None,
        description="Field with a stable question id; when absent the id is a hash of the problem text.",
    )
    problem: str = Field(default="problem", description="Field with the question text.")
    answer: str | None = Field(default="answer", description="Field with the reference answer (math).")
    tests: str | None = Field(
        default="tests",
        description="Field with the tests (code): function-call or stdin/stdout form, see the README.",
    )
    source: str | None = Field(
        default=None,
        description="Field naming the sub-source or topic, used for "
        "balancing; when absent the dataset's name is used.",
    )


class DatasetSpec(ApiModel):
    """A question dataset: a local JSONL/Parquet file, a directory of shards, or a
    `datasets.save_to_disk` directory."""

    path: str = Field(description="File or directory holding the rows.", min_length=1)
    format: str = Field(
        default="auto",
        pattern="^(auto|jsonl|parquet|hf_disk)$",
        description="auto picks by suffix / directory contents.",
    )
    split: str | None = Field(default=None, description="Split to read from a DatasetDict on disk.")
    task: TaskType = Field(default=TaskType.math, description="math or code: decides the verifier.")
    fields: FieldMapping = Field(default_factory=FieldMapping, description="Source field names.")
    on_bad_row: BadRowPolicy = Field(
        default=BadRowPolicy.fail,
        description="fail stops with file and "
        "line; quarantine sets the row aside and counts it in the manifest.",
    )
    limit: int | None = Field(default=None, ge=1, description="Read at most this many rows (for trials).")
    claim_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="PersistentVolumeClaim holding the data, mounted read-only into the stage's pods; path "
        "is then relative to its root; without a claim (as under `adacot run`) path is used as given.",
    )


# ---------------------------------------------------------------------------------------------------------
# CEL rules. They live on the models (the CRD generator only copies them); each one has a pydantic twin
# below so the CLI rejects the same mistakes without an API server.

# ---------------------------------------------------------------------------------------------------------
# Small Kubernetes-shaped blocks.

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes resource quantities as people write them ("500m", "16Gi", "2").
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


class SecretRef(ApiModel):
    """A key of a Secret in the resource's namespace; the operator passes it as a `secretKeyRef` env var
    and the local runner reads it from the environment variable of the same upper-cased name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")

    @property
    def env_var(self) -> str:
        """The environment variable a pod (or the local runner) gets the secret in:
        ADACOT_SECRET_<NAME>_<KEY>, upper-cased, every non-alphanumeric character turned into "_"."""
        return "ADACOT_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", f"{self.name}_{self.key}").upper()


class LocalObjectReference(ApiModel):
    """A reference to another adacot resource in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_LABEL,
        description="Name of the referenced resource (same namespace).",
    )


class ModelSpec(ApiModel):
    """A model: a local directory (usually on a PVC) or a hub id where the cluster has network access."""

    model_config = ConfigDict(json_schema_extra=validations(one_of_rule(("path", "hubId"), "model")))

    path: str | None = Field(
        default=None,
        min_length=1,
        description="Directory with the weights and "
        "tokenizer; relative to the root of claimName when that is set.",
    )
    claim_name: str | None = Field(
        default=None,
        pattern=DNS1123_LABEL,
        description="PersistentVolumeClaim holding the model; mounted read-only into the stage's pods.",
    )
    hub_id: str | None = Field(
        default=None,
        min_length=1,
        description="Hugging Face hub id, e.g. "
        "Qwen/Qwen2.5-7B-Instruct (needs network access from the pods).",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weight dtype; auto means bfloat16 on GPU and float32 on CPU."
    )
    trust_remote_code: bool = Field(default=False, description="Allow the model's own Python code to run.")
    max_model_len: int | None = Field(
        default=None,
        ge=1,
        description="Context length cap (prompt + completion); defaults to the model's own.",
    )
    token: SecretRef | None = Field(default=None, description="Secret holding a hub access token.")
    chat_template: str | None = Field(
        default=None, description="Jinja chat template that replaces the tokenizer's own."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        check_one_of(self, ("path", "hubId"), "model")
        return self

    def identity(self) -> str:
        """A short string naming the model (for summaries and matching a bank to its model)."""
        where = self.path if self.path is not None else f"hub:{self.hub_id}"
        if self.claim_name:
            where = f"pvc:{self.claim_name}/{where}"
        return f"{where}@{self.revision}" if self.revision else where


class Toleration(ApiModel):
    """A Kubernetes toleration (same fields as core/v1 Toleration)."""

    key: str | None = Field(default=None, description="Taint key; empty with operator Exists matches all.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty means all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated before eviction."
    )


class Scheduling(ApiModel):
    """Where the stage's pods run. Editable only while the resource is suspended (Kueue changes it then)."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods require.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    affinity: dict[str, Any] | None = Field(
        default=None, description="A core/v1 Affinity object, passed through to the pod spec unchanged."
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    runtime_class_name: str | None = Field(
        default=None, description="RuntimeClass of the pods (e.g. nvidia)."
    )


class Resources(ApiModel):
    """Compute per pod (per node for multi-node SFT). CPU and memory are requests and limits both."""

    gpus: int = Field(default=1, ge=0, le=64, description="Accelerators per pod.")
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu", min_length=1, description="Extended resource name of the accelerator."
    )
    cpu: str | None = Field(default=None, pattern=QUANTITY, description="CPU quantity, e.g. 8 or 500m.")
    memory: str | None = Field(default=None, pattern=QUANTITY, description="Memory quantity, e.g. 64Gi.")
    shared_memory: str = Field(
        default="16Gi",
        pattern=QUANTITY,
        description="Size of the in-memory /dev/shm volume (vLLM and NCCL need more than the default).",
    )


class EnvVar(ApiModel):
    """An extra environment variable for the stage's container: a literal or a Secret key."""

    model_config = ConfigDict(json_schema_extra=validations(one_of_rule(("value", "secretKeyRef"), "env")))

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    secret_key_ref: SecretRef | None = Field(default=None, description="Take the value from a Secret.")

    @model_validator(mode="after")
    def _one_value(self) -> EnvVar:
        check_one_of(self, ("value", "secretKeyRef"), f"env {self.name}")
        return self


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


class VolumeClaimSpec(ApiModel):
    """The PersistentVolumeClaim the operator creates for a stage's output."""

    size: str = Field(default="20Gi", pattern=QUANTITY, description="Requested storage, e.g. 100Gi.")
    storage_class_name: str | None = Field(
        default=None, description="StorageClass; empty means the cluster default."
    )
    access_modes: list[AccessMode] = Field(
        default=["ReadWriteOnce"],
        min_length=1,
        description="Access modes; sharded stages on several nodes need ReadWriteMany.",
    )


class OutputSpec(ApiModel):
    """Where a stage writes its artifact: a volume to create, or an existing claim."""

    model_config = ConfigDict(
        json_schema_extra=validations(one_of_rule(("create", "existingClaim"), "output"))
    )

    create: VolumeClaimSpec | None = Field(default=None, description="Create a PVC owned by this resource.")
    existing_claim: str | None = Field(
        default=None, pattern=DNS1123_LABEL, description="Write into this existing PVC instead."
    )
    sub_path: str | None = Field(
        default=None,
        pattern=r"^[^/].*$",
        description="Directory inside the volume; defaults to <namespace>/<kind>/<name>.",
    )
    retention: Literal["Retain", "Delete"] = Field(
        default="Retain", description="What happens to a created volume when the resource is deleted."
    )

    @model_validator(mode="after")
    def _one_target(self) -> OutputSpec:
        check_one_of(self, ("create", "existingClaim"), "output")
        return self


def _default_output() -> OutputSpec:
    return OutputSpec(create=VolumeClaimSpec())


SCHEDULING_WHILE_SUSPENDED = cel(
    "(has(oldSelf.suspend) && oldSelf.suspend) || (has(self.suspend) && self.suspend) || "
    "(has(self.scheduling) == has(oldSelf.scheduling) && (!has(self.scheduling) || "
    "self.scheduling == oldSelf.scheduling))",
    "scheduling can only be changed while spec.suspend is true",
)


class CommonSpec(ApiModel):
    """Fields every kind shares: lifecycle, placement, image and output volume."""

    model_config = ConfigDict(json_schema_extra=validations(SCHEDULING_WHILE_SUSPENDED))

    suspend: bool = Field(
        default=False,
        description="Stop the stage's Jobs and keep its artifacts; set "
        "back to false to resume from the shards already written.",
    )
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Node placement of the pods.")
    queue: str | None = Field(
        default=None,
        description="Kueue LocalQueue; set as the kueue.x-k8s.io/"
        "queue-name label on the child Jobs, which are created suspended.",
    )
    resources: Resources = Field(default_factory=Resources, description="Compute per pod.")
    image: str | None = Field(default=None, description="Worker image; defaults to the operator's setting.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, description="Secrets for pulling the image."
    )
    service_account_name: str | None = Field(default=None, description="ServiceAccount of the pods.")
    backoff_limit: int = Field(default=3, ge=0, le=100, description="Pod retries before the Job fails.")
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Wall-clock limit of the stage's Job; exceeding it fails with DeadlineExceeded.",
    )
    output: OutputSpec = Field(
        default_factory=_default_output,
        description="Where the artifact is written.",
        json_schema_extra=immutable("output"),
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")


# ---------------------------------------------------------------------------------------------------------
# Blocks shared by the generating stages (grading, distillation, evaluation).


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

    n: int = Field(default=1, ge=1, le=1024, description="Samples per question (k).")
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
    code_memory_mb: int = Field(default=1024, ge=64, description="Memory limit of a sandboxed program.")
    workers: int = Field(default=4, ge=1, le=256, description="Verifier worker processes.")


class DecontaminationSpec(ApiModel):
    """Remove questions that overlap evaluation benchmarks (n-gram overlap on normalised text)."""

    benchmarks: list[DatasetSpec] = Field(
        min_length=1, description="Benchmark files to check against (only their problem field is read)."
    )
    ngram: int = Field(default=8, ge=1, le=64, description="Word n-gram size (open-r1 uses 8).")
    threshold: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="A question is contaminated when the share "
        "of its n-grams found in a benchmark exceeds this; 0 means any shared n-gram.",
    )
