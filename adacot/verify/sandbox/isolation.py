"""Which kernel isolation this machine grants a run, and the caller's own shield when it grants none.

Called by adacot.verify.sandbox.slots when a Sandbox is created. `probe_isolation` starts confine.py
once per interpreter in probe mode: as root it tries the network and PID namespaces and reports which
it got; not root, it reports neither and no privilege drop without starting anything. `shield_caller`
is what the non-root mode has instead: the caller becomes non-dumpable. What each mode does and does
not protect against is in adacot.verify.sandbox.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from functools import cache

from adacot.verify.sandbox.limits import ChildConfig, Isolation
from adacot.verify.sandbox.workdir import base_env
from adacot.verify.sandbox.zygote import CONFINE

log = logging.getLogger(__name__)
_PR_SET_DUMPABLE = 4


@cache
def probe_isolation(python: str = sys.executable) -> Isolation:
    """Find out once which namespaces a child may create; the result is cached per interpreter."""
    if os.geteuid() != 0:
        return Isolation(False, False, False, "not root: no namespaces, no privilege drop")
    cfg = ChildConfig(workdir="/", script="", channel_fd=-1, limits={}, probe=True)
    proc = subprocess.run(
        [python, "-s", "-S", "-B", "-P", CONFINE, json.dumps(asdict(cfg))],
        capture_output=True,
        env=base_env("/", ""),
        timeout=60,
        check=False,
    )
    try:
        found = json.loads(proc.stdout.decode() or "{}")
    except ValueError:
        found = {}
    netns, pidns = bool(found.get("netns")), bool(found.get("pidns"))
    note = "" if netns and pidns else f"namespaces refused: {proc.stderr.decode(errors='replace')[-300:]}"
    return Isolation(netns, pidns, True, note)


def shield_caller(isolation: Isolation) -> None:
    """Without a privilege drop a program runs as our uid and could read this process's
    /proc/PID/environ (where a pod's secretKeyRef env vars are) or attach to it: PR_SET_DUMPABLE=0
    closes both to other processes of the uid. Lasts for this process and its forks, until an exec."""
    if isolation.drop_privileges:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("code sandbox: prctl(PR_SET_DUMPABLE, 0) failed: %s", os.strerror(ctypes.get_errno()))
    _warn_unprivileged(isolation.note)


@cache
def _warn_unprivileged(note: str) -> None:
    log.warning(
        "code sandbox without privilege drop (%s): programs run as this user, with network access, "
        "and can read this user's files; fit for trusted code only (docs/security.md)",
        note,
    )
