"""The envelope every adacot resource shares: apiVersion, kind, metadata, spec, status.

Used by the four kind modules (which subclass `Resource`), the YAML loader, the CRD generator (which reads
the ClassVars for names, short names and printer columns) and the operator (which parses kopf bodies
into these models on a handler's first line). `ObjectMeta` accepts the fields the API server adds
(uid, resourceVersion, generation, ...) so a live object round-trips; unknown metadata keys are still
errors, as everywhere in the api package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from adacot.api.common import DNS1123_LABEL, ApiModel
from adacot.api.rules import cel, validations

GROUP = "adacot.dev"
VERSION = "v1alpha1"
API_VERSION: Literal["adacot.dev/v1alpha1"] = "adacot.dev/v1alpha1"

# Child Jobs are named <name>-<stage suffix>; Job names feed a pod label limited to 63 characters, so the
# resource name keeps 11 characters of room (the same reasoning makes CronJob names at most 52).
MAX_NAME_LENGTH = 52


class ObjectMeta(ApiModel):
    """Kubernetes object metadata (the fields of meta/v1 ObjectMeta)."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=DNS1123_LABEL,
        description="Resource name: lower-case letters, digits and '-', at most 52 characters.",
    )
    namespace: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace; references between resources stay inside it.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    generate_name: str | None = Field(default=None, description="Set by clients that let the server name.")
    uid: str | None = Field(default=None, description="Set by the API server.")
    resource_version: str | None = Field(default=None, description="Set by the API server.")
    generation: int | None = Field(default=None, ge=0, description="Spec generation, set by the API server.")
    creation_timestamp: datetime | None = Field(default=None, description="Set by the API server.")
    deletion_timestamp: datetime | None = Field(default=None, description="Set by the API server.")
    deletion_grace_period_seconds: int | None = Field(default=None, description="Set by the API server.")
    finalizers: list[str] = Field(default_factory=list, description="Finalizers.")
    owner_references: list[dict[str, Any]] = Field(default_factory=list, description="Owners.")
    managed_fields: list[dict[str, Any]] = Field(default_factory=list, description="Server-side apply data.")
    self_link: str | None = Field(default=None, description="Deprecated; set by old API servers.")


SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=BaseModel)


class Resource(ApiModel, Generic[SpecT, StatusT]):
    """A custom resource of group adacot.dev. Subclasses fix `kind` and the ClassVars below."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters (room for child Job suffixes)",
            )
        )
    )

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, str], ...]]

    api_version: Literal["adacot.dev/v1alpha1"] = Field(
        default=API_VERSION, description="adacot.dev/v1alpha1."
    )
    kind: str = Field(description="Resource kind.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: SpecT = Field(description="What to run.")
    status: StatusT | None = Field(default=None, description="What happened, written by the operator.")

    @property
    def key(self) -> tuple[str, str]:
        """(kind, name): unique within a namespace; what `references` returns."""
        return (self.KIND, self.metadata.name)

    def references(self) -> list[tuple[str, str]]:
        """(kind, name) of the resources this one consumes; overridden by the kinds that have inputs."""
        return []


def phase_columns(*extra: dict[str, str]) -> tuple[dict[str, str], ...]:
    """Printer columns: Phase first, kind-specific figures, Age last (kubectl's convention)."""
    phase = {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Summary of the conditions.",
    }
    progress = {
        "name": "Progress",
        "type": "number",
        "jsonPath": ".status.progress.percent",
        "description": "Percent of the work done.",
    }
    age = {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since creation.",
    }
    return (phase, progress, *extra, age)
