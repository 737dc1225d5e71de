"""The sandbox's data: what a run is limited to, what isolation the machine grants, what a run
returns, and the config a confined child receives.

Plain dataclasses, standard library only. `SandboxLimits` and `SandboxRun` are public (re-exported by
adacot.verify.sandbox; used by adacot.verify.code, adacot.verify.factory and `adacot verify code`);
`ChildConfig` is the parent-to-child protocol of this subpackage, read as a dict by confine.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


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
    """RLIMIT_NPROC of a run's processes; enforced per run where it has its own uid (root) or user
    namespace (bubblewrap), not in the `none` mode (see adacot.verify.sandbox)."""
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
    namespaces: bool = True
    """Confine runs in bubblewrap's namespaces where the machine allows it; False keeps only the
    rlimits, the root-only privilege drop and the scratch environment (trusted code, benchmarks)."""


@dataclass(frozen=True)
class Isolation:
    """Which kernel isolation this machine grants; probed once per process."""

    netns: bool
    """Runs have no network (their own namespace: a downed loopback only)."""
    pidns: bool
    """Each run is PID 1 of its own PID namespace."""
    drop_privileges: bool
    """Each worker slot runs as its own unprivileged uid (root only)."""
    note: str = ""
    jail: tuple[str, ...] = ()
    """The bubblewrap command that wraps each slot's processes (empty: none): private /tmp, /dev/shm
    and /run, everything else read-only, no network, its own user namespace when not root."""
    userns: bool = False
    """Runs are in a user namespace (not root): capabilities there are dropped before the script."""

    @property
    def mode(self) -> str:
        """`root+bwrap`, `root`, `userns` or `none`: the rows of docs/security.md's table."""
        if self.jail:
            return "userns" if self.userns else "root+bwrap"
        return "root" if self.drop_privileges else "none"


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
class ChildConfig:
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
    own_proc: bool = False
    """Mount a private /proc (and mount namespace) for the run's PID namespace: jailed runs."""
    drop_caps: bool = False
    """Drop every capability before the script: runs that are root of a user namespace."""
