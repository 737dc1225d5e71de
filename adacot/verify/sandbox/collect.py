"""Parent side of one run, from its pipes to its result: launch with fresh pipes, read stdout, stderr
and the result channel with caps until they close and the process has exited, then kill what is left.

Called by adacot.verify.sandbox.slots for every run, whichever way it was launched (a zygote's
`ServedChild` or a fresh interpreter's `FreshChild`, adacot.verify.sandbox.zygote). The wall-clock
timeout, the output caps and the final kill (process group, then marker scan or the PID namespace's
end, adacot.verify.sandbox.stragglers) are enforced here, from outside the sandbox. Limits: a stream
over its cap kills the whole run (`overflow`), its data cut at the cap; nothing is streamed to the
caller before the run ends.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable
from typing import Protocol

from adacot.verify.sandbox.limits import ChildConfig, SandboxLimits, SandboxRun
from adacot.verify.sandbox.stragglers import DRAIN_SECONDS, await_marked_gone, kill_run

_READ_CHUNK = 1 << 16


class Child(Protocol):
    """A run's process as the collector sees it (adacot.verify.sandbox.zygote.ServedChild or FreshChild)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    @property
    def namespace_gone(self) -> bool: ...

    def exit_fd(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int | None: ...

    def close(self) -> None: ...


Launch = Callable[[ChildConfig, str, list[int]], Child]
"""Starts a run: (config, marker token, write ends of stdout/stderr/channel) -> its process."""


def start(launch: Launch, cfg: ChildConfig, token: str) -> tuple[Child, dict[str, int]]:
    """Launch with fresh pipes; the caller owns the returned read ends (stdout, stderr, channel)."""
    pipes = [os.pipe() for _ in range(3)]
    try:
        child = launch(cfg, token, [write for _, write in pipes])
    except BaseException:
        for read, _ in pipes:
            os.close(read)
        raise
    finally:
        for _, write in pipes:
            os.close(write)
    return child, dict(zip(("stdout", "stderr", "channel"), (read for read, _ in pipes), strict=True))


class _Streams:
    """The three capped byte streams of a run, read without blocking."""

    def __init__(self, fds: dict[str, int], limits: SandboxLimits) -> None:
        self.fds = fds
        self.caps = {
            "stdout": limits.stdout_bytes,
            "stderr": limits.stderr_bytes,
            "channel": limits.result_bytes,
        }
        self.data = {name: bytearray() for name in self.caps}
        self.exit_ready = False
        """Whether the last select saw the exit fd readable."""
        self.selector = selectors.DefaultSelector()
        for name, fd in fds.items():
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, name)

    def pump(self, timeout: float) -> str | None:
        """Read what is ready; return the name of a stream that overflowed its cap."""
        self.exit_ready = False
        for key, _ in self.selector.select(timeout):
            if key.data == "exit":
                self.exit_ready = True
                continue
            chunk = os.read(key.fd, _READ_CHUNK)
            if not chunk:
                self.selector.unregister(key.fileobj)
                continue
            buf = self.data[key.data]
            buf += chunk
            if len(buf) > self.caps[key.data]:
                del buf[self.caps[key.data] :]
                return str(key.data)
        return None

    def open_streams(self) -> int:
        return sum(1 for key in self.selector.get_map().values() if key.data != "exit")

    def close(self) -> None:
        self.selector.close()
        for fd in self.fds.values():
            os.close(fd)


def collect(child: Child, fds: dict[str, int], limits: SandboxLimits, token: str, scan: bool) -> SandboxRun:
    """Read the run's streams until they close and it has exited, within the wall limit; then kill
    what is left. Owns `fds`. Raises ZygoteLost when the fork server dies during the run."""
    streams = _Streams(fds, limits)
    exit_fd = child.exit_fd()
    if exit_fd is not None:
        streams.selector.register(exit_fd, selectors.EVENT_READ, "exit")
    deadline = time.monotonic() + limits.wall_seconds
    timed_out, overflow, exited = False, None, False
    try:
        while streams.open_streams() or not exited:
            now = time.monotonic()
            if now >= deadline:
                timed_out = not exited
                break
            # Without an exit fd the exit is noticed by polling; with one, select wakes on it.
            overflow = streams.pump(min(deadline - now, 0.05 if exit_fd is None else 3600.0))
            if overflow:
                break
            # Polling costs a system call: only when the exit fd said so (or there is none).
            if not exited and (streams.exit_ready or exit_fd is None) and child.poll() is not None:
                exited = True
                if exit_fd is not None:
                    streams.selector.unregister(exit_fd)  # stays readable (pidfd): no busy loop
                kill_run(child.pid, token, scan)  # anything still in the group is a straggler
                deadline = min(deadline, time.monotonic() + DRAIN_SECONDS)
    finally:
        kill_run(child.pid, token, scan)
        child.wait()
        if not child.namespace_gone:
            await_marked_gone(token)
        streams.close()
        child.close()
    return SandboxRun(
        channel=bytes(streams.data["channel"]),
        stdout=bytes(streams.data["stdout"]),
        stderr=bytes(streams.data["stderr"]),
        exit_code=child.returncode,
        timed_out=timed_out,
        overflow=overflow,
    )
