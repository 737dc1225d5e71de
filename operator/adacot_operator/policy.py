"""The pod policy: what a resource's spec may ask of its stage pods, so the operator is no confused deputy.

Called by adacot_operator.builders.children (before building anything) and, through the `Refused` it
raises, by adacot_operator.reconcile (which ends the resource in phase Failed, reason ValidationFailed,
with the message). Pure: the resource and the settings in, a list of refusals out.

Why: the operator's ServiceAccount creates Jobs in the tenant's namespace, so whoever may create adacot
resources could otherwise get, through the operator, pods they may not create themselves. By default a
spec gets nothing beyond the restricted Pod Security profile and the operator's own choices:

- spec.image outside `allowedImages` (default: the worker image's repository directory, e.g.
  `ghcr.io/adacot/*`; the worker image itself is always allowed);
- a ServiceAccount (spec.serviceAccountName, spec.podTemplate.spec.serviceAccountName) other than the
  worker account, unless it matches `allowedServiceAccounts`;
- hostNetwork, hostPID, hostIPC (`allowHostNamespaces`); hostPath volumes (`allowHostPath`); volume
  types outside the restricted profile's (`allowedVolumeTypes`); a projected ServiceAccount token
  (`allowServiceAccountToken`: stage pods mount no token);
- runAsUser 0 or runAsNonRoot false (`allowRunAsRoot`); added capabilities (`allowedCapabilities`);
- privileged, allowPrivilegeEscalation, Unconfined seccomp or AppArmor, an unmasked /proc, unsafe
  sysctls, SELinux user/role or a custom type, Windows hostProcess (`allowPrivileged`).

Each refusal names the spec field and the chart value (`podPolicy.<key>`, variable ADACOT_POD_POLICY)
that would allow it. What the settings themselves set (worker image and ServiceAccount, default
scheduling) is the admin's and never checked. Limits: Secrets of the namespace can still be read
through spec.env / podTemplate secretKeyRef and secret volumes (the operator cannot know who may read
which Secret); keep Secrets a tenant must not see out of the namespaces where tenants create resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from typing import Any

from adacot.api import AnyResource
from adacot.api.workload import PodTemplateSpec
from adacot_operator.settings import ENV_NAMES, OperatorSettings, PodPolicy

POD_TEMPLATE = "spec.podTemplate.spec"
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
"""Volume types the restricted Pod Security profile allows."""
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
"""The sysctls the baseline profile allows."""
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


class Refused(Exception):
    """A spec asks its pods for something the operator will not give them; the message names the spec
    field and, where one exists, the setting that would allow it. Not a ValueError: a refusal is final
    (ValidationFailed), not "an input is not ready yet"."""

    def __init__(self, field: str, why: str, setting: str | None = None) -> None:
        self.field, self.why, self.setting = field, why, setting
        allow = f"; allowed only by the operator setting podPolicy.{setting} ({ENV_NAMES['pod_policy']})"
        super().__init__(f"{field}: {why}{allow if setting else ''}")

    @classmethod
    def of(cls, refusals: list[Refused]) -> Refused:
        """One exception carrying every refusal's message (the first's field and setting)."""
        first = refusals[0]
        combined = cls(first.field, first.why, first.setting)
        combined.args = ("; ".join(str(r) for r in refusals),)
        return combined


def check(resource: AnyResource, settings: OperatorSettings) -> None:
    """Raise Refused (every refusal in one message) when the spec asks for what the policy forbids."""
    found = refusals(resource, settings)
    if found:
        raise Refused.of(found)


def refusals(resource: AnyResource, settings: OperatorSettings) -> list[Refused]:
    """Every refusal of `resource` under `settings.pod_policy` (see the module docstring)."""
    spec, policy = resource.spec, settings.pod_policy
    found: list[Refused] = []
    if spec.image is not None and not image_allowed(spec.image, settings):
        patterns = ", ".join(allowed_images(settings))
        found.append(Refused("spec.image", f"image {spec.image} matches none of {patterns}", "allowedImages"))
    accounts = [("spec.serviceAccountName", spec.service_account_name)]
    over = spec.pod_template.spec if spec.pod_template is not None else None
    if over is not None:
        accounts.append((f"{POD_TEMPLATE}.serviceAccountName", over.service_account_name))
    for field, account in accounts:
        if account is not None and not service_account_allowed(account, settings):
            found.append(
                Refused(
                    field,
                    f"ServiceAccount {account} is not the worker account {settings.worker_service_account}",
                    "allowedServiceAccounts",
                )
            )
    if over is not None:
        found += template_refusals(over, policy)
    return found


def allowed_images(settings: OperatorSettings) -> list[str]:
    """The image patterns in force: the policy's, else the worker image's repository directory."""
    return list(settings.pod_policy.allowed_images) or [image_directory(settings.worker_image) + "/*"]


def image_directory(image: str) -> str:
    """`ghcr.io/adacot/worker:1.0@sha256:...` -> `ghcr.io/adacot` (an image with no `/`: itself)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    repository = name if ":" not in name[slash + 1 :] else name[: name.rfind(":")]
    return repository.rsplit("/", 1)[0] if "/" in repository else repository


def image_allowed(image: str, settings: OperatorSettings) -> bool:
    return image == settings.worker_image or any(fnmatchcase(image, p) for p in allowed_images(settings))


def service_account_allowed(account: str, settings: OperatorSettings) -> bool:
    allowed = settings.pod_policy.allowed_service_accounts
    return account == settings.worker_service_account or any(fnmatchcase(account, p) for p in allowed)


def template_refusals(over: PodTemplateSpec, policy: PodPolicy) -> list[Refused]:
    """Refusals of spec.podTemplate.spec: host namespaces, volumes, security contexts."""
    found: list[Refused] = []
    if not policy.allow_host_namespaces:
        for key, on in (
            ("hostNetwork", over.host_network),
            ("hostPID", over.host_pid),
            ("hostIPC", over.host_ipc),
        ):
            if on:
                found.append(
                    Refused(f"{POD_TEMPLATE}.{key}", "host namespaces are refused", "allowHostNamespaces")
                )
    for i, volume in enumerate(over.volumes):
        found += _volume_refusals(f"{POD_TEMPLATE}.volumes[{i}]", volume, policy)
    found += list(_context_refusals(f"{POD_TEMPLATE}.securityContext", over.security_context or {}, policy))
    container = over.container_security_context or {}
    where = f"{POD_TEMPLATE}.containerSecurityContext"
    found += list(_context_refusals(where, container, policy))
    if container.get("privileged") is True and not policy.allow_privileged:
        found.append(Refused(f"{where}.privileged", "privileged containers are refused", "allowPrivileged"))
    if container.get("allowPrivilegeEscalation") is True and not policy.allow_privileged:
        found.append(
            Refused(f"{where}.allowPrivilegeEscalation", "privilege escalation is refused", "allowPrivileged")
        )
    if container.get("procMount") not in (None, "Default") and not policy.allow_privileged:
        found.append(Refused(f"{where}.procMount", "an unmasked /proc is refused", "allowPrivileged"))
    added = (container.get("capabilities") or {}).get("add") or []
    for j, capability in enumerate(added if isinstance(added, list) else [added]):
        if not _capability_allowed(str(capability), policy.allowed_capabilities):
            found.append(
                Refused(
                    f"{where}.capabilities.add[{j}]",
                    f"adding capability {capability} is refused",
                    "allowedCapabilities",
                )
            )
    return found


def _capability_allowed(capability: str, allowed: Iterable[str]) -> bool:
    bare = capability.upper().removeprefix("CAP_")
    return any(a == "*" or a.upper().removeprefix("CAP_") == bare for a in allowed)


def _volume_refusals(where: str, volume: dict[str, Any], policy: PodPolicy) -> list[Refused]:
    found: list[Refused] = []
    for kind in (k for k in volume if k != "name"):
        if kind == "hostPath":
            if not policy.allow_host_path:
                found.append(Refused(f"{where}.hostPath", "hostPath volumes are refused", "allowHostPath"))
        elif kind not in RESTRICTED_VOLUME_TYPES and kind not in policy.allowed_volume_types:
            found.append(Refused(f"{where}.{kind}", f"{kind} volumes are refused", "allowedVolumeTypes"))
    sources = (volume.get("projected") or {}).get("sources") or []
    for j, source in enumerate(sources if isinstance(sources, list) else []):
        if (
            isinstance(source, dict)
            and "serviceAccountToken" in source
            and not policy.allow_service_account_token
        ):
            found.append(
                Refused(
                    f"{where}.projected.sources[{j}].serviceAccountToken",
                    "a ServiceAccount token in the pod is refused (stage pods mount none)",
                    "allowServiceAccountToken",
                )
            )
    return found


def _context_refusals(where: str, context: dict[str, Any], policy: PodPolicy) -> Iterator[Refused]:
    """What pod- and container-level security contexts share: root, seccomp, AppArmor, SELinux,
    sysctls (pod only), Windows hostProcess."""
    if not policy.allow_run_as_root:
        if context.get("runAsUser") == 0:
            yield Refused(f"{where}.runAsUser", "running as root (uid 0) is refused", "allowRunAsRoot")
        if context.get("runAsNonRoot") is False:
            yield Refused(f"{where}.runAsNonRoot", "runAsNonRoot false is refused", "allowRunAsRoot")
    if policy.allow_privileged:
        return
    for key in ("seccompProfile", "appArmorProfile"):
        if (context.get(key) or {}).get("type") == "Unconfined":
            yield Refused(f"{where}.{key}.type", "an Unconfined profile is refused", "allowPrivileged")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("user") or selinux.get("role") or selinux.get("type", "") not in SELINUX_TYPES:
        yield Refused(
            f"{where}.seLinuxOptions", "a custom SELinux user, role or type is refused", "allowPrivileged"
        )
    for k, sysctl in enumerate(context.get("sysctls") or []):
        if isinstance(sysctl, dict) and sysctl.get("name") not in SAFE_SYSCTLS:
            yield Refused(
                f"{where}.sysctls[{k}]", f"sysctl {sysctl.get('name')} is unsafe", "allowPrivileged"
            )
    if (context.get("windowsOptions") or {}).get("hostProcess") is True:
        yield Refused(f"{where}.windowsOptions.hostProcess", "host processes are refused", "allowPrivileged")
