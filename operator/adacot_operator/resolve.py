"""Input resolution: a resource plus its producers' outputs -> the spec its pod runs, the inputs it mounts
and the `adacot stage` flags that name them.

Callers: adacot_operator.builders (children, configmap, volumes: building the ConfigMap, volumes and
Job), the handlers (which turn the producers' specs into `ResolvedInputs`: `output_location` of each) and
adacot_operator.status (a stage's own `status.output`, from `output_location`). Pure functions.

Pod layout under the claim mount root ROOT (ADACOT_CLAIM_MOUNT_ROOT, default /mnt/adacot):
`ROOT/output` the output claim (read-write), `ROOT/claims/<claimName>` each claim the spec names
(read-only; the spec's paths are rewritten to absolute paths there), `ROOT/inputs/<kind>-<name>` each
producer's artifact (read-only, the claim's sub-path). Relative paths without a claimName resolve
against "/" (the image's file system); hub ids are left alone.
Limits: this module does not check that files exist (the stage does, failing with exit code 1 or 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from adacot.api import RESOURCE_KINDS, AnyResource, references
from adacot.api.common import ModelSpec
from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.paths import claim_names, resolve_paths
from adacot.api.sft_job import SFTJob
from adacot.api.stage_pod import BANK_FLAG, DATASET_FLAG, EVAL_GRADING_FLAG, RUN_FLAG
from adacot.api.status import OutputStatus
from adacot_operator.names import child_name

SPEC_DIR = "/etc/adacot"
SPEC_FILE = "spec.yaml"
SPEC_PATH = f"{SPEC_DIR}/{SPEC_FILE}"

Key = tuple[str, str]


class InputsError(ValueError):
    """A producer the resource needs has no usable output; the message names the field."""


@dataclass(frozen=True)
class ResolvedInputs:
    """What the handlers learned about a resource's producers before building its children."""

    outputs: Mapping[Key, OutputStatus] = field(default_factory=dict)
    """(kind, name) of each producer -> its output location (claim and path inside the claim). A bank
    gets every GradingRun that feeds it here, those of bankRef included."""
    model: ModelSpec | None = None
    """An SFTJob's base model when its spec names none (the model of the bank behind its
    DistillationJob, found by the handlers); ignored for other kinds."""

    @classmethod
    def from_producers(
        cls, producers: Mapping[Key, Mapping[str, Any]], model: ModelSpec | None = None
    ) -> ResolvedInputs:
        """From producer bodies as read from the API server: each producer's output location computed
        from its spec (`output_location`), never read from its status, which is not the spec's owner's
        to vouch for; a producer whose body does not validate has no output (the consumer waits)."""
        outputs: dict[Key, OutputStatus] = {}
        for key, body in producers.items():
            try:
                producer = RESOURCE_KINDS[key[0]].model_validate({**body, "kind": key[0]})
            except (KeyError, ValueError):
                continue
            outputs[key] = output_location(cast(AnyResource, producer))
        return cls(outputs=outputs, model=model)


@dataclass(frozen=True)
class InputMount:
    """One producer artifact mounted read-only into the stage's pod."""

    kind: str
    name: str
    claim: str
    sub_path: str
    mount_path: str


def output_location(resource: AnyResource) -> OutputStatus:
    """Claim and directory inside it where `resource` writes its artifact (what its status.output and
    its consumers' mounts name): output.existingClaim or the created PVC; output.subPath or
    <namespace>/<kind>/<name> (the layout of `adacot run`'s work directory)."""
    output, meta = resource.spec.output, resource.metadata
    path = output.sub_path or f"{meta.namespace}/{resource.kind}/{meta.name}"
    return OutputStatus(claim=output_claim_name(resource), path=path)


def output_claim_name(resource: AnyResource) -> str:
    """The claim `resource` writes to: output.existingClaim, else the PVC the operator creates."""
    return resource.spec.output.existing_claim or child_name(resource.kind, resource.metadata.name)


def output_mount(root: str) -> str:
    return f"{root}/output"


def claim_mount(root: str, claim: str) -> str:
    return f"{root}/claims/{claim}"


def input_mount(root: str, kind: str, name: str) -> str:
    return f"{root}/inputs/{kind.lower()}-{name}"


def input_mounts(resource: AnyResource, inputs: ResolvedInputs, root: str) -> list[InputMount]:
    """The producer artifacts `resource` reads, in a stable order; InputsError when one is missing."""
    needed = list(references(resource))
    if isinstance(resource, DifficultyBank):
        needed += sorted(k for k in inputs.outputs if k[0] == "GradingRun" and k not in needed)
    mounts: list[InputMount] = []
    for kind, name in needed:
        output = inputs.outputs.get((kind, name))
        if output is None or not output.claim or not output.path:
            raise InputsError(
                f"{resource.kind}/{resource.metadata.name}: input {kind}/{name} has no status.output "
                "(claim and path) yet"
            )
        sub_path = output.path.strip("/")
        mounts.append(InputMount(kind, name, output.claim, sub_path, input_mount(root, kind, name)))
    return mounts


def input_flags(resource: AnyResource, mounts: list[InputMount]) -> list[str]:
    """The `adacot stage <kind>` flags naming the mounted inputs."""
    where = {(m.kind, m.name): m.mount_path for m in mounts}
    if isinstance(resource, DifficultyBank):
        return [f for m in mounts if m.kind == "GradingRun" for f in (RUN_FLAG, f"{m.name}={m.mount_path}")]
    if isinstance(resource, DistillationJob):
        flags = [BANK_FLAG, where[("DifficultyBank", resource.spec.bank_ref.name)]]
        peval = resource.spec.distribution.from_grading_run
        return flags + ([EVAL_GRADING_FLAG, where[("GradingRun", peval.name)]] if peval else [])
    if isinstance(resource, SFTJob) and resource.spec.dataset.distillation_job_ref is not None:
        return [DATASET_FLAG, where[("DistillationJob", resource.spec.dataset.distillation_job_ref.name)]]
    return []


def fill_model_from_inputs(resource: AnyResource, inputs: ResolvedInputs) -> AnyResource:
    """An SFTJob without spec.model gets `inputs.model` (InputsError when that is unknown too).

    Not adacot.api.defaults.with_default_model, which *finds* the base model among the namespace's
    resources (the handlers call it to fill `ResolvedInputs.model`); this one only applies it."""
    if not isinstance(resource, SFTJob) or resource.spec.model is not None:
        return resource
    if inputs.model is None:
        raise InputsError(
            f"SFTJob/{resource.metadata.name}: spec.model is unset and no base model was resolved "
            "from the bank behind its DistillationJob"
        )
    return resource.model_copy(update={"spec": resource.spec.model_copy(update={"model": inputs.model})})


def spec_claims(resource: AnyResource, inputs: ResolvedInputs) -> list[str]:
    """The claims named by `claimName` fields of the spec (after the SFT model default)."""
    return claim_names(fill_model_from_inputs(resource, inputs).spec)


def resolved_document(resource: AnyResource, inputs: ResolvedInputs, root: str) -> dict[str, Any]:
    """The resource as its pod reads it (the ConfigMap's spec.yaml): paths absolute under the claim
    mounts, the SFT base model filled in; no status, no server metadata, no spec.suspend (suspending
    is the Job's business, and must not change the spec hash)."""
    filled = fill_model_from_inputs(resource, inputs)
    claims = {name: Path(claim_mount(root, name)) for name in claim_names(filled.spec)}
    problems: list[str] = []  # every claim is mapped, so resolve_paths finds none
    spec = resolve_paths(filled.spec, Path("/"), claims, "spec", problems)
    # No exclude_none: a null can differ from the default (fields.answer: null means "no answer field").
    body = spec.model_dump(mode="json", by_alias=True)
    body.pop("suspend", None)
    meta = resource.metadata
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": meta.name, "namespace": meta.namespace},
        "spec": body,
    }
