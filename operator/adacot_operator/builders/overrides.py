"""`spec.podTemplate` merged onto the stage's pod template the operator built — pure, dicts in and out.

Callers: adacot_operator.builders.children (after builders.job.pod_template; adacot_operator.policy has
already refused what the operator's podPolicy does not allow). The rule: **operator-owned fields win,
and asking to change one is refused** (adacot_operator.policy.Refused, reported as ValidationFailed with
the field's path) rather than silently dropped:

- metadata: labels are added; adacot.dev/* and app.kubernetes.io/managed-by (and any label the operator
  set) are refused; annotations likewise under adacot.dev/ and the operator's prefix;
- volumes are added; a name the operator uses (spec, shm, tmp, home, claim-*) is refused; mounts go on
  the stage container; a mountPath the operator uses, or one inside the claim mount root or the spec
  directory, is refused;
- env is added like spec.env (it replaces a variable of the settings' workerExtraEnv of the same name);
  a variable adacot sets itself (ADACOT_*, HOME, secrets' ADACOT_SECRET_*, the torchrun rendezvous) is
  refused;
- securityContext (pod) and containerSecurityContext are merged over the restricted profile: keys the
  override sets win, except that runAsNonRoot, seccompProfile, allowPrivilegeEscalation and
  capabilities.drop ALL stay the operator's unless the policy allowed changing them (root, privileged);
  capabilities.add is taken as the policy allowed it;
- imagePullSecrets and tolerations are unions; nodeSelector keys are merged (the template wins a key the
  settings' default set); serviceAccountName, schedulerName, priorityClassName and affinity replace;
  hostNetwork, hostPID, hostIPC are set when true.

A spec without podTemplate gets the template unchanged (the same Job as before podTemplate existed).
"""

from __future__ import annotations

import copy
from typing import Any

from adacot.api import AnyResource
from adacot.api.workload import EnvVar, PodTemplate
from adacot_operator.names import LABEL_PREFIX, MANAGED_BY_LABEL
from adacot_operator.policy import Refused
from adacot_operator.resolve import SPEC_DIR
from adacot_operator.settings import OperatorSettings

WHERE = "spec.podTemplate"


def apply_overrides(
    template: dict[str, Any], resource: AnyResource, settings: OperatorSettings
) -> dict[str, Any]:
    """`template` (a Job's pod template from builders.job.pod_template) with spec.podTemplate merged
    on (see the module docstring); raises Refused on a conflict with an operator-owned field."""
    over = resource.spec.pod_template
    if over is None:
        return template
    merged = copy.deepcopy(template)
    _metadata(merged.setdefault("metadata", {}), over, settings)
    pod = merged["spec"]
    container = pod["containers"][0]
    _volumes(pod, container, over, settings)
    container["env"] = _env(container.get("env") or [], over, resource, settings)
    _security(pod, container, over)
    _placement(pod, over)
    return merged


def _owned_key(key: str, prefixes: tuple[str, ...]) -> bool:
    return key == MANAGED_BY_LABEL or any(key.startswith(f"{p}/") for p in prefixes)


def _metadata(meta: dict[str, Any], over: PodTemplate, settings: OperatorSettings) -> None:
    prefixes = (LABEL_PREFIX, settings.prefix)
    for part in ("labels", "annotations"):
        mine: dict[str, str] = meta.setdefault(part, {})
        for key, value in getattr(over.metadata, part).items():
            if key in mine or _owned_key(key, prefixes):
                raise Refused(f"{WHERE}.metadata.{part}[{key}]", f"{key} is set by the operator")
            mine[key] = value


def _inside(path: str, root: str) -> bool:
    path, root = path.rstrip("/") or "/", root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def _volumes(
    pod: dict[str, Any], container: dict[str, Any], over: PodTemplate, settings: OperatorSettings
) -> None:
    volumes: list[dict[str, Any]] = pod.setdefault("volumes", [])
    names = {v["name"] for v in volumes}
    for i, volume in enumerate(over.spec.volumes):
        if volume["name"] in names:
            raise Refused(f"{WHERE}.spec.volumes[{i}].name", f"volume {volume['name']} is the operator's")
        volumes.append(copy.deepcopy(volume))
    mounts: list[dict[str, Any]] = container.setdefault("volumeMounts", [])
    taken = {m["mountPath"].rstrip("/") for m in mounts}
    for i, mount in enumerate(over.spec.volume_mounts):
        path = mount.mount_path
        if path.rstrip("/") in taken or _inside(path, settings.claim_mount_root) or _inside(path, SPEC_DIR):
            raise Refused(
                f"{WHERE}.spec.volumeMounts[{i}].mountPath",
                f"{path} is an operator mount or inside {settings.claim_mount_root} or {SPEC_DIR}",
            )
        mounts.append(mount.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True))


def env_entry(var: EnvVar) -> dict[str, Any]:
    """A spec EnvVar as a core/v1 EnvVar (as builders.job writes it)."""
    if var.secret_key_ref is not None:
        ref = var.secret_key_ref
        return {"name": var.name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
    return {"name": var.name, "value": var.value}


def _env(
    env: list[dict[str, Any]], over: PodTemplate, resource: AnyResource, settings: OperatorSettings
) -> list[dict[str, Any]]:
    """The container env with the template's variables: an entry that is not exactly a spec.env or a
    settings workerExtraEnv entry is adacot's own (refused); a settings entry is replaced."""
    spec_entries = [env_entry(v) for v in resource.spec.env]
    extra = [env_entry(v) for v in settings.worker_extra_env]
    out = list(env)
    for i, var in enumerate(over.spec.env):
        entry = env_entry(var)
        at = next((j for j, e in enumerate(out) if e["name"] == var.name), None)
        if at is None:
            out.append(entry)
        elif out[at] in spec_entries:
            continue  # the same value as spec.env (the API refuses different values)
        elif out[at] in extra:
            out[at] = entry
        else:
            raise Refused(f"{WHERE}.spec.env[{i}].name", f"{var.name} is set by adacot")
    return out


def _security(pod: dict[str, Any], container: dict[str, Any], over: PodTemplate) -> None:
    pod_context = dict(over.spec.security_context or {})
    box = dict(over.spec.container_security_context or {})
    root = (
        pod_context.get("runAsUser") == 0
        or box.get("runAsUser") == 0
        or False in (pod_context.get("runAsNonRoot"), box.get("runAsNonRoot"))
    )
    merged_pod = {**pod.get("securityContext", {}), **pod_context}
    caps = dict(container.get("securityContext", {}).get("capabilities") or {})
    wanted = box.pop("capabilities", None) or {}
    merged = {**container.get("securityContext", {}), **box}
    drop = [
        *(caps.get("drop") or []),
        *(c for c in wanted.get("drop") or [] if c not in (caps.get("drop") or [])),
    ]
    merged["capabilities"] = {**({"add": list(wanted["add"])} if wanted.get("add") else {}), "drop": drop}
    if root:  # the policy allowed it; runAsNonRoot true would make the kubelet refuse the container
        merged_pod["runAsNonRoot"] = pod_context.get("runAsNonRoot", False)
        merged["runAsNonRoot"] = box.get("runAsNonRoot", False)
    if box.get("privileged") is True:  # allowed by the policy; the API refuses it with escalation off
        merged["allowPrivilegeEscalation"] = box.get("allowPrivilegeEscalation", True)
    pod["securityContext"], container["securityContext"] = merged_pod, merged


def _placement(pod: dict[str, Any], over: PodTemplate) -> None:
    spec = over.spec
    pulls = [*(pod.get("imagePullSecrets") or []), *({"name": s.name} for s in spec.image_pull_secrets)]
    if pulls:
        pod["imagePullSecrets"] = [{"name": n} for n in dict.fromkeys(p["name"] for p in pulls)]
    tolerations = list(pod.get("tolerations") or [])
    for toleration in spec.tolerations:
        dumped = toleration.model_dump(by_alias=True, exclude_none=True)
        if dumped not in tolerations:
            tolerations.append(dumped)
    if tolerations:
        pod["tolerations"] = tolerations
    if spec.node_selector:
        pod["nodeSelector"] = {**(pod.get("nodeSelector") or {}), **spec.node_selector}
    single = {
        "serviceAccountName": spec.service_account_name,
        "schedulerName": spec.scheduler_name,
        "priorityClassName": spec.priority_class_name,
        "affinity": copy.deepcopy(spec.affinity),
    }
    pod.update({k: v for k, v in single.items() if v is not None})
    pod.update({k: True for k, on in (("hostNetwork", spec.host_network), ("hostPID", spec.host_pid),
                                      ("hostIPC", spec.host_ipc)) if on})  # fmt: skip
