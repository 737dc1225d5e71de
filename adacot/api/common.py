"""Building blocks shared by the four resource specs: the base model, datasets, references, models.

Every model is camelCase on the wire (Kubernetes convention) and snake_case in Python; unknown fields
are rejected so that a typo in a YAML file is an error, not a silently ignored setting. How a stage's
pods run is in adacot.api.workload; engines, sampling and verification in adacot.api.generation.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from adacot.api.rules import check_one_of, one_of_rule, validations
from adacot.api.stage_pod import SECRET_ENV_PREFIX


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
# References: secrets, other resources, models.

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SecretRef(ApiModel):
    """A key of a Secret in the resource's namespace; the operator passes it as a `secretKeyRef` env var
    and the local runner reads it from the environment variable of the same upper-cased name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")

    @property
    def env_var(self) -> str:
        """The environment variable a pod (or the local runner) gets the secret in:
        ADACOT_SECRET_<NAME>_<KEY>, upper-cased, every non-alphanumeric character turned into "_"."""
        return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{self.name}_{self.key}").upper()


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
