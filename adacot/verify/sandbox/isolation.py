"""Which kernel isolation this machine grants a run, and the caller's own shield when it grants none.

Called by adacot.verify.sandbox.slots when a Sandbox is created. `probe_isolation` starts confine.py
once per interpreter in probe mode, inside bubblewrap's jail (adacot.verify.sandbox.jail) when the
binary is there, and keeps the first mode that works: `root+bwrap` / `userns` (the jail), `root` (bare
namespaces and the uid drop), `none`. `warn_once` says loudly what a mode without the jail lacks;
`shield_caller` makes the caller non-dumpable when runs share its uid. What each mode does and does
not protect against is in adacot.verify.sandbox and docs/security.md.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from functools import cache

from adacot.verify.sandbox.jail import find_bwrap, jail_command, jailed
from adacot.verify.sandbox.limits import ChildConfig, Isolation
from adacot.verify.sandbox.workdir import base_env
from adacot.verify.sandbox.zygote import CONFINE

log = logging.getLogger(__name__)
_PR_SET_DUMPABLE = 4


@cache
def probe_isolation(python: str = sys.executable, namespaces: bool = True) -> Isolation:
    """Find out once which isolation a run gets; cached per interpreter. Bubblewrap's jail first
    (root or not); then, as root, bare network and PID namespaces; else none."""
    root = os.geteuid() == 0
    note = "bubblewrap (bwrap) not found" if namespaces else "namespaces switched off"
    bwrap = find_bwrap() if namespaces else None
    if bwrap is not None:
        jail = jail_command(bwrap, userns=not root)
        found, refused = _probe(python, jail)
        if found.get("netns") and found.get("pidns") and found.get("proc"):
            return Isolation(True, True, root, "", jail, userns=not root)
        note = f"bubblewrap refused: {refused}"
    if not root or not namespaces:
        return Isolation(False, False, root, f"{'root' if root else 'not root'}, {note}")
    found, refused = _probe(python, ())
    netns, pidns = bool(found.get("netns")), bool(found.get("pidns"))
    refused = "" if netns and pidns else f"; namespaces refused: {refused}"
    return Isolation(netns, pidns, True, note + refused)


def _probe(python: str, jail: tuple[str, ...]) -> tuple[dict[str, bool], str]:
    """Run confine.py's probe (in `jail` if any): which namespaces a run could make, and stderr."""
    with tempfile.TemporaryDirectory(prefix="adacot-probe-") as base:
        cfg = ChildConfig(workdir=base, script="", channel_fd=-1, limits={}, probe=True)
        command = [python, "-s", "-S", "-B", "-P", CONFINE, json.dumps(asdict(cfg))]
        try:
            proc = subprocess.run(
                jailed(jail, base, base, command),
                capture_output=True,
                env=base_env(base, ""),
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {}, str(exc)
    try:
        found = json.loads(proc.stdout.decode() or "{}")
    except ValueError:
        found = {}
    return found, proc.stderr.decode(errors="replace")[-300:].strip()


def warn_once(isolation: Isolation) -> None:
    """Say loudly, once per process and mode, what a run is exposed to when the jail is missing."""
    if isolation.jail:
        log.info("code sandbox: %s (bubblewrap jail, docs/security.md)", isolation.mode)
        return
    if isolation.drop_privileges:
        network = "have no network" if isolation.netns else "HAVE THE NETWORK"
        _warn(
            f"code sandbox as root without bubblewrap (%s): runs drop to their own uid and {network}, "
            "but share the host's /tmp, /dev/shm and /run (tokens under /run/secrets); install "
            "bubblewrap (docs/security.md)",
            isolation.note,
        )
    else:
        _warn(
            "code sandbox WITHOUT ISOLATION (%s): programs run as this user, with network access, can "
            "read this user's files and fork without a per-run limit; fit for trusted code only. "
            "Install bubblewrap and allow unprivileged user namespaces, or run the verifier under "
            "gVisor/Kata (docs/security.md)",
            isolation.note,
        )


def shield_caller(isolation: Isolation) -> None:
    """Without a privilege drop a program runs as our uid and could read this process's
    /proc/PID/environ (where a pod's secretKeyRef env vars are) or attach to it: PR_SET_DUMPABLE=0
    closes both to other processes of the uid. Lasts for this process and its forks, until an exec."""
    if isolation.drop_privileges:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("code sandbox: prctl(PR_SET_DUMPABLE, 0) failed: %s", os.strerror(ctypes.get_errno()))


@cache
def _warn(message: str, note: str) -> None:
    log.warning(message, note)
