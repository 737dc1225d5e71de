"""Building blocks shared by the four resource specs.

Every model is camelCase on the wire (Kubernetes convention) and snake_case in Python; unknown fields
are rejected so that a typo in a YAML file is an error, not a silently ignored setting.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


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

    id: str | None = Field(default=None, description="Field with a stable question id; when absent "
                           "the id is a hash of the problem text.")
    problem: str = Field(default="problem", description="Field with the question text.")
    answer: str | None = Field(default="answer", description="Field with the reference answer (math).")
    tests: str | None = Field(default="tests", description="Field with the tests (code): function-call "
                              "or stdin/stdout form, see the README.")
    source: str | None = Field(default=None, description="Field naming the sub-source or topic, used for "
                               "balancing; when absent the dataset's name is used.")


class DatasetSpec(ApiModel):
    """A question dataset: a local JSONL/Parquet file, a directory of shards, or a
    `datasets.save_to_disk` directory."""

    path: str = Field(description="File or directory holding the rows.", min_length=1)
    format: str = Field(default="auto", pattern="^(auto|jsonl|parquet|hf_disk)$",
                        description="auto picks by suffix / directory contents.")
    split: str | None = Field(default=None, description="Split to read from a DatasetDict on disk.")
    task: TaskType = Field(default=TaskType.math, description="math or code: decides the verifier.")
    fields: FieldMapping = Field(default_factory=FieldMapping, description="Source field names.")
    on_bad_row: BadRowPolicy = Field(default=BadRowPolicy.fail, description="fail stops with file and "
                                     "line; quarantine sets the row aside and counts it in the manifest.")
    limit: int | None = Field(default=None, ge=1, description="Read at most this many rows (for trials).")
