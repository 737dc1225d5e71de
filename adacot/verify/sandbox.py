"""Run untrusted Python in a confined child process and collect what its harness reports.

Called by adacot.verify.code (the code Result-Verifier). The child side lives in
adacot.verify.confine (`python -s -S -B -P confine.py CONFIG`); both import only the standard library.

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
    files the caller can read (including /proc/PID/environ of the caller's processes), open network
    connections and signal the caller. Stragglers that left the process group are found by a marker in
    their environment and killed. Run adacot's verifiers as root inside a container (as the worker image
    does) or treat the non-root mode as a convenience for trusted code only.

What it does NOT protect against, in any mode: kernel exploits (this is not a security boundary like
gVisor or a VM); system calls in general (no seccomp filter); the shared /tmp and other world-writable
paths (no mount namespace: the program can write there and read world-readable files); CPU and memory
bandwidth contention with other work on the machine; timing side channels.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import cache

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "confine.py")
"""The child's entry point: a standard-library-only module kept small so that it starts fast."""
_MARKER = "ADACOT_SANDBOX_RUN"
_READ_CHUNK = 1 << 16
_DRAIN_SECONDS = 5.0  # after the child exits, how long stragglers may keep the pipes open


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
        [python, "-s", "-S", "-B", "-P", _CHILD, json.dumps(asdict(cfg))],
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


class Sandbox:
    """Runs scripts confined; thread-safe, one worker slot (uid) per concurrent run."""

    def __init__(self, limits: SandboxLimits | None = None, slots: int = 1) -> None:
        self.limits = limits or SandboxLimits()
        self.isolation = probe_isolation(self.limits.python)
        self._slots: queue.Queue[int] = queue.Queue()
        first = self.limits.uid_base + secrets.randbelow((1 << 20) - max(1, slots))
        for slot in range(max(1, slots)):
            self._slots.put(first + slot)
        self.id = secrets.token_hex(6)
        """Prefix of the marker token of this sandbox's processes (see `live_processes`)."""
        # The base is traversable but not listable, so a program cannot find sibling workdirs.
        self._base = tempfile.mkdtemp(prefix="adacot-sandbox-")
        os.chmod(self._base, 0o711)

    def close(self) -> None:
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
        uid = self._slots.get()
        try:
            return self._run(script, files, limits, uid, argv or [])
        finally:
            self._slots.put(uid)

    def _run(
        self, script: str, files: dict[str, bytes], limits: SandboxLimits, slot: int, argv: list[str]
    ) -> SandboxRun:
        uid = slot if self.isolation.drop_privileges else None
        workdir = tempfile.mkdtemp(dir=self._base)
        token = f"{self.id}-{secrets.token_hex(8)}"
        try:
            _populate(workdir, {**files, "harness_main.py": script.encode()}, uid)
            read_fd, write_fd = os.pipe()
            cfg = _ChildConfig(
                workdir=workdir,
                script="harness_main.py",
                channel_fd=write_fd,
                limits=asdict(limits),
                netns=self.isolation.netns,
                pidns=self.isolation.pidns,
                uid=uid,
                argv=argv,
            )
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    [limits.python, "-s", "-S", "-B", "-P", _CHILD, json.dumps(asdict(cfg))],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(write_fd,),
                    env=_base_env(workdir, token),
                    cwd=workdir,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(write_fd)
            with os.fdopen(read_fd, "rb", buffering=0) as channel:
                result = _collect(proc, channel, limits, token, not self.isolation.pidns)
            result.seconds = time.monotonic() - started
            result.isolation = self.isolation
            return result
        finally:
            _remove_tree(workdir)


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
        _MARKER: token,
    }


# ----------------------------------------------------------------------------- parent side: collection


class _Streams:
    """The three capped byte streams of a run, read without blocking."""

    def __init__(self, proc: subprocess.Popen[bytes], channel: object, limits: SandboxLimits) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.caps = {
            "stdout": limits.stdout_bytes,
            "stderr": limits.stderr_bytes,
            "channel": limits.result_bytes,
        }
        self.data = {name: bytearray() for name in self.caps}
        self.selector = selectors.DefaultSelector()
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr), ("channel", channel)):
            os.set_blocking(stream.fileno(), False)  # type: ignore[attr-defined]
            self.selector.register(stream, selectors.EVENT_READ, name)  # type: ignore[arg-type]

    def pump(self, timeout: float) -> str | None:
        """Read what is ready; return the name of a stream that overflowed its cap."""
        for key, _ in self.selector.select(timeout):
            if key.data == "exit":
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


def _collect(
    proc: subprocess.Popen[bytes], channel: object, limits: SandboxLimits, token: str, scan: bool
) -> SandboxRun:
    streams = _Streams(proc, channel, limits)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        streams.selector.register(pidfd, selectors.EVENT_READ, "exit")
    deadline = time.monotonic() + limits.wall_seconds
    timed_out, overflow, exited = False, None, False
    try:
        while streams.open_streams() or not exited:
            now = time.monotonic()
            if now >= deadline:
                timed_out = not exited
                break
            # Without a pidfd the exit is noticed by polling; with one, select wakes on it.
            overflow = streams.pump(min(deadline - now, 0.05 if pidfd is None else 3600.0))
            if overflow:
                break
            if not exited and proc.poll() is not None:
                exited = True
                _kill(proc, token, scan)  # anything still in the group is a straggler
                deadline = min(deadline, time.monotonic() + _DRAIN_SECONDS)
    finally:
        _kill(proc, token, scan)
        proc.wait()
        _await_marked_gone(token)
        streams.selector.close()
        if pidfd is not None:
            os.close(pidfd)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    return SandboxRun(
        channel=bytes(streams.data["channel"]),
        stdout=bytes(streams.data["stdout"]),
        stderr=bytes(streams.data["stderr"]),
        exit_code=proc.returncode,
        timed_out=timed_out,
        overflow=overflow,
    )


def _await_marked_gone(token: str, seconds: float = _DRAIN_SECONDS) -> None:
    """Kill the run's processes by marker and wait until they are gone: when the namespace's init
    dies, the kernel kills the rest asynchronously, after our direct child has already exited."""
    deadline = time.monotonic() + seconds
    for pid in _marked_pids(f"{_MARKER}={token}".encode()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        pidfd = _pidfd(pid)
        if pidfd is None:
            continue
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            selector.select(max(0.0, deadline - time.monotonic()))
        os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill(proc: subprocess.Popen[bytes], token: str, scan: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if scan:
        kill_marked(token)


def kill_marked(token: str = "") -> int:
    """Kill every process whose environment carries the sandbox marker (with this token, or any
    when token is empty); returns how many. Catches stragglers that called setsid()."""
    needle = f"{_MARKER}={token}".encode()
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
    for pid in _marked_pids(f"{_MARKER}={prefix}".encode()):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            live.append(pid)
    return live
