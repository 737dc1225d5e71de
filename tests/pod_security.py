"""A checker of the Kubernetes Pod Security Standards "restricted" profile (baseline included), as data.

Used by the builder tests (every pod template the operator builds) and the chart tests. Pure: a pod
spec in, the violated rules out (empty: the pod is admitted under `enforce: restricted`). Rules as
https://kubernetes.io/docs/concepts/security/pod-security-standards/ states them for v1.32: host
namespaces, privileged, capabilities (baseline's allowed adds; restricted: drop ALL, add at most
NET_BIND_SERVICE), hostPath volumes and host ports, AppArmor, SELinux, /proc mount, seccomp, sysctls,
volume types, privilege escalation, running as non-root, non-zero uid. Windows-only fields are out of
scope (the stages run on Linux).
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
     "secret"}
)  # fmt: skip
BASELINE_CAPS = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
     "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)  # fmt: skip
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes"}
)  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def restricted_violations(pod_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """Every rule of the restricted profile `pod_spec` breaks (a Pod's spec or a template's)."""
    bad: list[str] = []
    pod_ctx = pod_spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(host):
            bad.append(f"{host} is true")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            bad.append(f"volume {volume['name']} has type {sorted(kinds - ALLOWED_VOLUMES)}")
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            bad.append(f"annotation {key}={value}")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            bad.append(f"sysctl {sysctl.get('name')} is not safe")
    bad += _context_violations("pod", pod_ctx, pod_level=True)
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or []),
                  *(pod_spec.get("ephemeralContainers") or [])]  # fmt: skip
    for container in containers:
        where = f"container {container.get('name')}"
        ctx = container.get("securityContext") or {}
        bad += _context_violations(where, ctx, pod_level=False)
        if ctx.get("privileged"):
            bad.append(f"{where}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{where}: capabilities must drop ALL")
        added = set(caps.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            bad.append(f"{where}: adds capabilities {sorted(added - {'NET_BIND_SERVICE'})}")
        if any(p.get("hostPort") for p in container.get("ports") or []):
            bad.append(f"{where}: hostPort")
        if ctx.get("procMount", "Default") != "Default":
            bad.append(f"{where}: procMount {ctx['procMount']}")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            bad.append(f"{where}: runAsNonRoot must be true (here or on the pod)")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost (here or on the pod)")
    return bad


def _context_violations(where: str, ctx: dict[str, Any], *, pod_level: bool) -> list[str]:
    """Rules shared by the pod's and each container's securityContext."""
    bad: list[str] = []
    if ctx.get("runAsUser") == 0:
        bad.append(f"{where}: runAsUser 0")
    if ctx.get("runAsNonRoot") is False:
        bad.append(f"{where}: runAsNonRoot false")
    selinux = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        bad.append(f"{where}: seLinuxOptions {selinux}")
    seccomp = (ctx.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        bad.append(f"{where}: seccompProfile Unconfined")
    apparmor = (ctx.get("appArmorProfile") or {}).get("type")
    if apparmor == "Unconfined":
        bad.append(f"{where}: appArmorProfile Unconfined")
    if pod_level and ctx.get("windowsOptions", {}).get("hostProcess"):
        bad.append(f"{where}: hostProcess")
    return bad
