"""Run untrusted Python in a confined child process and collect what its harness reports.

Called by adacot.verify.code (the code Result-Verifier). The child side lives in
adacot.verify.sandbox.confine; both import only the standard library. A run's process is forked by a fork
server ("zygote", adacot.verify.sandbox.zygote): one warm confine.py process per worker slot; a trivial
sample costs ~5 ms of CPU instead of ~35 ms with a fresh interpreter. The zygote never runs the
script or candidate code, and the forked child closes the zygote's socket and every other inherited
descriptor before it does anything else. When a zygote dies it is restarted once and the run
repeated; when that fails too, the slot falls back to a fresh interpreter per run
(`python -s -S -B -P confine.py CONFIG`), with a warning. Both paths give the same guarantees, below.

What a run gets, on every machine:
  * a fresh session and process group (killed as a whole on timeout, overflow and exit);
  * RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE and RLIMIT_CORE=0;
  * a wall-clock timeout enforced from outside, by the parent;
  * a private working directory (mode 0700, inside a 0711 base that cannot be listed), removed after;
  * an environment built from scratch (PATH, LANG, HOME/TMPDIR = workdir, a fixed PYTHONHASHSEED so
    two runs of the same program order sets alike) - nothing of the caller's environment leaks in;
  * stdout/stderr read with a cap; a run that writes more is killed (`overflow`);
  * a dedicated result channel (a pipe passed with pass_fds) read with its own cap;
  * Python started with -s -S -B -P: no site-packages, no bytecode writes, no script directory on
    sys.path. Not -I: -I implies -E, which would ignore the PYTHONHASHSEED we set on purpose.

What it gets where the machine allows (probed once per process, see `probe_isolation`):
  * as root: a new network namespace (only a downed loopback: connect() fails with ENETUNREACH) and a
    new PID namespace (the harness is PID 1; when it exits the kernel kills every process left in it,
    so a fork bomb cannot outlive the run; the caller's processes are invisible and unsignalable),
    then privileges are dropped to an unprivileged uid/gid (one per worker slot, `uid_base + slot`),
    so RLIMIT_NPROC is enforced and the host's files, /proc/PID/environ of other users and the
    parent process are out of reach. The interpreter's standard library may lie below a directory the
    unprivileged uid cannot traverse (/root/.pyenv): sys.path is re-pointed at directory descriptors
    opened before the drop (/proc/self/fd/N), which exposes that library tree read-only, nothing else.
  * not root: no namespaces and no uid change. The program runs as the caller's user: it can read
    files the caller can read, open network connections and signal the caller. The caller makes itself
    non-dumpable (`shield_caller`), so its /proc/PID/environ (a stage's secret env vars), /proc/PID/mem
    and ptrace are closed to the program; other processes of the same user that exec'd since (a vLLM
    engine, a shell) stay readable. Stragglers that left the process group are found by a marker in
    their environment and killed (adacot.verify.sandbox.stragglers). adacot's worker images run as uid 10001,
    i.e. in this mode: run code grading of untrusted programs as root, under a sandboxed runtime, or
    without secrets (docs/security.md), or treat the non-root mode as fit for trusted code only.

What it does NOT protect against, in any mode: kernel exploits (this is not a security boundary like
gVisor or a VM); system calls in general (no seccomp filter); the shared /tmp, /dev/shm and other
world-writable paths (no mount namespace: the program can write there and read world-readable files;
workdirs live in /dev/shm when it is large, so what a program writes costs memory until the run ends);
CPU and memory bandwidth contention with other work on the machine; timing side channels.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import queue
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Protocol

from adacot.verify.sandbox.stragglers import (
    DRAIN_SECONDS,
    MARKER,
    await_marked_gone,
    kill_run,
    sandbox_processes,
)
from adacot.verify.sandbox.zygote import CONFINE, ForkServer, FreshChild, ZygoteLost

log = logging.getLogger(__name__)
_SCRIPT = "harness_main.py"
_READ_CHUNK = 1 << 16
_SHM = "/dev/shm"
_SHM_MIN_FREE = 4 << 30
_PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run (all tests of one sample)."""

    wall_seconds: float = 60.0
    """Whole run, enforced from outside by killing the process group (and namespace)."""
    test_seconds: float = 5.0
    """One test, enforced by the in-sandbox harness (function call or one stdin/stdout execution)."""
    cpu_seconds: int = 60
    """RLIMIT_CPU of each process in the sandbox."""
    memory_bytes: int = 2 << 30
    """RLIMIT_AS (address space) of each process."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file a process may write."""
    max_processes: int = 32
    """RLIMIT_NPROC; only enforced when privileges are dropped (root), see the module docstring."""
    max_open_files: int = 256
    """RLIMIT_NOFILE."""
    stdout_bytes: int = 1 << 20
    """Cap on the program's stdout; more kills the run."""
    stderr_bytes: int = 256 << 10
    """Cap on the program's stderr; more kills the run."""
    result_bytes: int = 64 << 20
    """Cap on the harness's result channel (return values of all tests)."""
    uid_base: int = 200000
    """Unprivileged uids/gids are drawn from [uid_base, uid_base + 2**20): each Sandbox takes a random
    block of one uid per worker slot, so concurrent verifiers rarely share one (root only)."""
    python: str = sys.executable
    """Interpreter that runs the sandboxed code."""


@dataclass(frozen=True)
class Isolation:
    """Which kernel isolation this machine grants; probed once per process."""

    netns: bool
    pidns: bool
    drop_privileges: bool
    note: str = ""


@dataclass
class SandboxRun:
    """What came back from one run. `channel` is the harness's result channel, raw."""

    channel: bytes
    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool = False
    overflow: str | None = None
    """Name of the stream that exceeded its cap (stdout, stderr, channel), if any."""
    seconds: float = 0.0
    isolation: Isolation | None = None


@dataclass
class _ChildConfig:
    """Everything the child needs to confine itself; travels as JSON in argv."""

    workdir: str
    script: str
    channel_fd: int
    limits: dict[str, float | int | str]
    netns: bool = False
    pidns: bool = False
    uid: int | None = None
    probe: bool = False
    argv: list[str] = field(default_factory=list)


@cache
def probe_isolation(python: str = sys.executable) -> Isolation:
    """Find out once which namespaces a child may create; the result is cached per interpreter."""
    if os.geteuid() != 0:
        return Isolation(False, False, False, "not root: no namespaces, no privilege drop")
    cfg = _ChildConfig(workdir="/", script="", channel_fd=-1, limits={}, probe=True)
    proc = subprocess.run(
        [python, "-s", "-S", "-B", "-P", CONFINE, json.dumps(asdict(cfg))],
        capture_output=True,
        env=_base_env("/", ""),
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


class _Child(Protocol):
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


_Launch = Callable[[_ChildConfig, str, list[int]], _Child]
"""Starts a run: (config, marker token, write ends of stdout/stderr/channel) -> its process."""


class Sandbox:
    """Runs scripts confined; thread-safe, one worker slot (uid, fork server) per concurrent run."""

    def __init__(self, limits: SandboxLimits | None = None, slots: int = 1, fork_server: bool = True) -> None:
        self.limits = limits or SandboxLimits()
        self.isolation = probe_isolation(self.limits.python)
        shield_caller(self.isolation)
        self._slots: queue.Queue[int] = queue.Queue()
        first = self.limits.uid_base + secrets.randbelow((1 << 20) - max(1, slots))
        for slot in range(max(1, slots)):
            self._slots.put(first + slot)
        self.id = secrets.token_hex(6)
        """Prefix of the marker token of this sandbox's processes (see `live_processes`)."""
        self.fork_server = fork_server
        """Whether runs are forked by a per-slot zygote; False: a fresh interpreter per run."""
        self.servers: dict[int, ForkServer] = {}
        """The live fork server of each slot that has one."""
        self._fresh_slots: set[int] = set()
        # Zygotes are started from this one thread: their PR_SET_PDEATHSIG fires when the thread that
        # forked them ends, and a verifier's worker threads may come and go.
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="sandbox-zygote")
        # The base is traversable but not listable, so a program cannot find sibling workdirs.
        self._base = tempfile.mkdtemp(prefix="adacot-sandbox-", dir=_workdir_root())
        os.chmod(self._base, 0o711)

    def close(self) -> None:
        for slot in list(self.servers):
            self._retire(slot)
        self._launcher.shutdown()
        shutil.rmtree(self._base, ignore_errors=True)

    def live_processes(self) -> list[int]:
        """Pids of this sandbox's processes still alive (should be none between runs)."""
        return sandbox_processes(f"{self.id}-")

    def run(
        self,
        script: str,
        files: dict[str, bytes],
        limits: SandboxLimits | None = None,
        argv: list[str] | None = None,
    ) -> SandboxRun:
        """Write `files` and `script` into a fresh workdir and run the script there, confined.

        The script receives the result channel's fd as sys.argv[1] (then `argv`)."""
        limits = limits or self.limits
        slot = self._slots.get()
        try:
            served = self.fork_server and slot not in self._fresh_slots
            if served and limits.python == self.limits.python:
                found = self._run_served(script, files, limits, slot, argv or [])
                if found is not None:
                    return found
            return self._run_once(self._launch_fresh, script, files, limits, slot, argv or [])
        finally:
            self._slots.put(slot)

    def _run_served(
        self, script: str, files: dict[str, bytes], limits: SandboxLimits, slot: int, argv: list[str]
    ) -> SandboxRun | None:
        """The run through the slot's zygote, restarted once when lost; None when that failed too."""
        for _ in range(2):
            try:
                return self._run_once(self._launch_served(slot), script, files, limits, slot, argv)
            except ZygoteLost as exc:
                self._retire(slot)
                lost = exc
        self._fresh_slots.add(slot)
        log.warning(
            "sandbox %s: the fork server of slot %d was lost twice (%s); this slot now starts a fresh "
            "interpreter per run (~30 ms more each)",
            self.id,
            slot,
            lost,
        )
        return None

    def _launch_served(self, slot: int) -> _Launch:
        def launch(cfg: _ChildConfig, token: str, fds: list[int]) -> _Child:
            env = {"HOME": cfg.workdir, "TMPDIR": cfg.workdir, MARKER: token}
            return self._server(slot).spawn(asdict(cfg), token, env, fds)

        return launch

    def _server(self, slot: int) -> ForkServer:
        server = self.servers.get(slot)
        if server is None or not server.alive:
            self._retire(slot)
            env = _base_env(self._base, "")
            del env[MARKER]
            start = self._launcher.submit(
                ForkServer,
                self.limits.python,
                env,
                MARKER,
                len(self._token()),
                self.isolation.pidns,
                self.isolation.drop_privileges,
            )
            server = self.servers[slot] = start.result()
        return server

    def _retire(self, slot: int) -> None:
        server = self.servers.pop(slot, None)
        if server is not None:
            server.stop()

    def _token(self) -> str:
        return f"{self.id}-{secrets.token_hex(8)}"

    def _launch_fresh(self, cfg: _ChildConfig, token: str, fds: list[int]) -> _Child:
        stdout, stderr, cfg.channel_fd = fds
        proc = subprocess.Popen(
            [str(cfg.limits["python"]), "-s", "-S", "-B", "-P", CONFINE, json.dumps(asdict(cfg))],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(cfg.channel_fd,),
            env=_base_env(cfg.workdir, token),
            cwd=cfg.workdir,
            start_new_session=True,
            close_fds=True,
        )
        return FreshChild(proc)

    def _run_once(
        self,
        launch: _Launch,
        script: str,
        files: dict[str, bytes],
        limits: SandboxLimits,
        slot: int,
        argv: list[str],
    ) -> SandboxRun:
        uid = slot if self.isolation.drop_privileges else None
        workdir = tempfile.mkdtemp(dir=self._base)
        token = self._token()
        try:
            _populate(workdir, {**files, _SCRIPT: script.encode()}, uid)
            cfg = _ChildConfig(
                workdir=workdir,
                script=_SCRIPT,
                channel_fd=-1,
                limits=asdict(limits),
                netns=self.isolation.netns,
                pidns=self.isolation.pidns,
                uid=uid,
                argv=argv,
            )
            started = time.monotonic()
            child, reads = _start(launch, cfg, token)
            result = _collect(child, reads, limits, token, not self.isolation.pidns)
            result.seconds = time.monotonic() - started
            result.isolation = self.isolation
            return result
        finally:
            _remove_tree(workdir)


def _start(launch: _Launch, cfg: _ChildConfig, token: str) -> tuple[_Child, dict[str, int]]:
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


def _workdir_root() -> str | None:
    """/dev/shm when it is a writable tmpfs with room, else the default temporary directory.

    Creating, filling and removing a workdir costs ~0.1 ms in memory against ~5 ms on a disk file
    system (ext4 mounted with `discard`, as on our CI machine). What a program writes there is held
    in memory until the run ends: bounded per file by RLIMIT_FSIZE, not in total (see the module
    docstring on world-writable paths). Small /dev/shm mounts (Docker's 64 MiB) are not used."""
    try:
        found = os.statvfs(_SHM)
    except OSError:
        return None
    roomy = found.f_bavail * found.f_frsize >= _SHM_MIN_FREE
    return _SHM if roomy and os.access(_SHM, os.W_OK | os.X_OK) else None


def _populate(workdir: str, files: dict[str, bytes], uid: int | None) -> None:
    for name, data in files.items():
        path = os.path.join(workdir, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o644)
    if uid is not None:
        os.chown(workdir, uid, uid)


def _remove_tree(path: str) -> None:
    # A program may chmod its own directories to 000; make them writable before removing.
    def fix(func: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            (os.rmdir if os.path.isdir(failed) else os.unlink)(failed)

    shutil.rmtree(path, onerror=fix)


def _base_env(workdir: str, token: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        MARKER: token,
    }


# ----------------------------------------------------------------------------- parent side: collection


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


def _collect(child: _Child, fds: dict[str, int], limits: SandboxLimits, token: str, scan: bool) -> SandboxRun:
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
