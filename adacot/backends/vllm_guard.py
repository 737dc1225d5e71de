"""vLLM engine processes that never outlive the process that started them.

vLLM's default layout runs the engine core in a child process (spawned on the CPU build). Its workers
watch the engine core through a pipe and exit with it, but nothing makes the engine core exit with *its*
parent: after a SIGKILL of the stage process (OOM killer, a pod's hard kill outside a PID namespace, a
user's `kill -9`), the engine core keeps running, holds its memory and the shared-memory segments its
workers use, and is reparented to init. Measured here before this guard: the engine core and its
resource tracker stayed up indefinitely, with two /dev/shm segments.

`install` is registered as a vLLM general plugin (entry point group `vllm.general_plugins` in
pyproject.toml), which vLLM runs in each of its processes as they start. It acts only where adacot asked
for it (`GUARD_ENV` set by `VllmGenerator`, inherited by the processes the engine starts) and only in a
process started by `multiprocessing` (the engine core, its workers): there it starts a daemon thread
that waits until the parent is gone (its multiprocessing sentinel reads end-of-file, or the process was
reparented), then sends this process SIGTERM (vLLM's own orderly shutdown: workers stopped, shared
memory released, after which the multiprocessing resource tracker unlinks whatever is left) and, if that
has not ended it within `GRACE_S`, SIGKILL. Parent-death signals (prctl PR_SET_PDEATHSIG) are not used:
a spawned child cannot set one before exec, and the kernel ties it to the thread that forked, not the
process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time

GUARD_ENV = "ADACOT_VLLM_PARENT_GUARD"
GRACE_S = 10.0
POLL_S = 1.0


def install() -> None:
    """Start the parent watch in this vLLM process when adacot asked for it (see the module docstring)."""
    if os.environ.get(GUARD_ENV) != "1":
        return
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return
    thread = threading.Thread(
        target=_watch, args=(parent.sentinel, parent.pid), name="adacot-parent-guard", daemon=True
    )
    thread.start()


def _watch(sentinel: int, parent_pid: int) -> None:
    # The sentinel alone is not enough: a child the parent forked may still hold the pipe's write end.
    while not multiprocessing.connection.wait([sentinel], timeout=POLL_S) and os.getppid() == parent_pid:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)
