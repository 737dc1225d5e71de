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
    """RLIMIT_NPROC; only enforced when privileges are dropped (root), see adacot.verify.sandbox."""
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
