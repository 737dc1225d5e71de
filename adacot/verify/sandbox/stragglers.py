"""Finding and killing a sandbox run's processes by the marker in their environment.

Called by adacot.verify.sandbox.collect (after each run) and .slots (`live_processes`). Why a marker:
a program can leave its process group (setsid) and its PID namespace exists only as root, so the one
trait every process of a run keeps is the environment entry `ADACOT_SANDBOX_RUN=<token>` it inherited
(the zygote writes it into each child's initial environment block, which is what /proc/PID/environ
shows). Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time

MARKER = "ADACOT_SANDBOX_RUN"
"""The environment variable whose value is a run's token."""
DRAIN_SECONDS = 5.0
"""After a run's child exits, how long its stragglers may take to die."""


def await_marked_gone(token: str, seconds: float = DRAIN_SECONDS) -> None:
    """Kill the run's processes by marker and wait until they are gone: when the namespace's init
    dies, the kernel kills the rest asynchronously, after our direct child has already exited."""
    deadline = time.monotonic() + seconds
    for pid in _marked_pids(f"{MARKER}={token}".encode()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        pidfd = pidfd_of(pid)
        if pidfd is None:
            continue
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            selector.select(max(0.0, deadline - time.monotonic()))
        os.close(pidfd)


def pidfd_of(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def kill_run(pid: int, token: str, scan: bool) -> None:
    # The group's leader is not reaped before this (Popen.wait after, the zygote's WNOWAIT), so its
    # pid cannot have been reused as another group's id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if scan:
        kill_marked(token)


def kill_marked(token: str = "") -> int:
    """Kill every process whose environment carries the sandbox marker (with this token, or any
    when token is empty); returns how many. Catches stragglers that called setsid()."""
    needle = f"{MARKER}={token}".encode()
    killed = 0
    for pid in _marked_pids(needle):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def _marked_pids(needle: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                env = handle.read()
        except OSError:
            continue
        if any(item.startswith(needle) for item in env.split(b"\0")):
            found.append(int(entry))
    return found


def sandbox_processes(prefix: str = "") -> list[int]:
    """Pids of live (non-zombie) sandboxed processes whose token starts with `prefix` (all when
    empty); used by tests and diagnostics."""
    live = []
    for pid in _marked_pids(f"{MARKER}={prefix}".encode()):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            live.append(pid)
    return live
