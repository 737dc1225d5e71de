"""`build_children`: the Kubernetes objects one adacot resource runs as — pure, spec in, dicts out.

Callers: adacot_operator.handlers (`_build`, the build step of reconcile.plan: create-or-get each
object by its deterministic name, compare the spec-hash annotation to decide whether a child is stale)
and tests (which validate every object against the Kubernetes schemas). Per resource, in creation
order, each from its own builder module:

- ConfigMap `<name>-<short>` (configmap): `spec.yaml`, the resolved resource (adacot_operator.resolve),
  mounted at /etc/adacot/spec.yaml;
- PersistentVolumeClaim `<name>-<short>` (volumes): only with output.create (not with existingClaim);
  owned by the resource only with retention Delete;
- headless Service `<name>-<short>` (service): only for a multi-node SFTJob (torchrun rendezvous);
- Job `<name>-<short>` (job): `adacot stage <kind> --spec /etc/adacot/spec.yaml <input flags>`.

Every child carries the adacot.dev/{kind,name,stage} labels, app.kubernetes.io/managed-by, and
`<prefix>/spec-hash`: the hash of the resolved document, the stage command and where each input is
read from (claim, sub-path), so it changes with anything the pod would do differently and not with
server metadata, spec.suspend or the operator's settings.
spec.podTemplate is merged onto the Job's pod template (builders.overrides); what the operator's pod
policy refuses (adacot_operator.policy) raises policy.Refused before anything is built.
Limits: raises InputsError (resolve) when a producer's output is unknown, ValueError when the resource
has no metadata.uid, policy.Refused (not a ValueError) on a refused or conflicting override;
creating, comparing and deleting objects is the handlers' job.
"""

from __future__ import annotations

from typing import Any

from adacot.api import AnyResource
from adacot.api.stage_pod import stage_name
from adacot_operator.builders.configmap import config_map
from adacot_operator.builders.job import container_env, is_multi_node, job, pod_template
from adacot_operator.builders.overrides import apply_overrides
from adacot_operator.builders.service import headless_service
from adacot_operator.builders.volumes import output_claim, pod_mounts, pod_volumes
from adacot_operator.names import child_name, spec_hash, spec_hash_annotation
from adacot_operator.policy import check as check_pod_policy
from adacot_operator.resolve import (
    SPEC_PATH,
    ResolvedInputs,
    input_flags,
    input_mounts,
    output_location,
    output_mount,
    resolved_document,
    spec_claims,
)
from adacot_operator.settings import OperatorSettings


def stage_command(resource: AnyResource, flags: list[str]) -> list[str]:
    """The stage container's command."""
    return ["adacot", "stage", stage_name(resource.kind), "--spec", SPEC_PATH, *flags]


def build_children(
    resource: AnyResource, inputs: ResolvedInputs, settings: OperatorSettings
) -> list[dict[str, Any]]:
    """ConfigMap, PVC (when created), headless Service (multi-node SFT) and Job of `resource`."""
    check_pod_policy(resource, settings)
    root = settings.claim_mount_root
    name = child_name(resource.kind, resource.metadata.name)
    mounts = input_mounts(resource, inputs, root)
    document = resolved_document(resource, inputs, root)
    command = stage_command(resource, input_flags(resource, mounts))
    sources = [[m.kind, m.name, m.claim, m.sub_path] for m in mounts]
    digest = spec_hash({"document": document, "command": command, "inputs": sources})
    annotations = {spec_hash_annotation(settings.prefix): digest}
    claims = spec_claims(resource, inputs)
    output_dir = f"{output_mount(root)}/{output_location(resource).path}"
    template = pod_template(
        resource,
        settings,
        command,
        container_env(resource, settings, output_dir),
        (pod_volumes(resource, name, claims, mounts), pod_mounts(resource, root, claims, mounts)),
        annotations,
    )
    template = apply_overrides(template, resource, settings)
    children = [config_map(resource, name, document, annotations)]
    claim = output_claim(resource, settings, annotations)
    children += [claim] if claim is not None else []
    children += [headless_service(resource, name, annotations)] if is_multi_node(resource) else []
    return [*children, job(resource, settings, template, annotations)]
