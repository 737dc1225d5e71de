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

Modules: limits.py (SandboxLimits, Isolation, SandboxRun, the child's config), isolation.py
(`probe_isolation`, `shield_caller`), slots.py (`Sandbox`: worker slots, their fork servers, one run),
workdir.py (a run's directory and environment), collect.py (a run's capped streams, wall timeout and
final kill), zygote.py (the fork server's parent side), stragglers.py (processes found by marker), and
confine.py (the child side, run by file path: never import it here). This module only re-exports.
"""

from adacot.verify.sandbox.isolation import probe_isolation, shield_caller
from adacot.verify.sandbox.limits import Isolation, SandboxLimits, SandboxRun
from adacot.verify.sandbox.slots import Sandbox

__all__ = ["Isolation", "Sandbox", "SandboxLimits", "SandboxRun", "probe_isolation", "shield_caller"]
