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

What it gets where the machine allows (probed once per process, see `probe_isolation`; the mode's
name is `Isolation.mode`, the rows of docs/security.md's table):
  * `root+bwrap` / `userns`: each worker slot's zygote runs in bubblewrap's jail (adacot.verify.sandbox.jail):
    `/` read-only, private /tmp, /var/tmp, /dev/shm and /run (tokens under /run/secrets hidden), its
    own network (loopback only), IPC and UTS namespaces. Each run is PID 1 of its own PID namespace
    with its own /proc (the stage's processes are invisible and unsignalable, and everything the run
    started dies with it) and no_new_privs. As root, runs drop to the slot's uid (`uid_base + slot`,
    so RLIMIT_NPROC is per slot; the standard library is kept reachable through descriptors opened
    before the drop). Not root, the jail is a user namespace of its own per slot (so RLIMIT_NPROC
    counts that slot's processes only) in which a run is uid 0 with every capability dropped.
  * `root` (no bubblewrap): bare network and PID namespaces and the uid drop, but the host's /tmp,
    /dev/shm and /run are shared.
  * `none` (not root, no bubblewrap or no user namespaces): no namespaces and no uid change; the
    program runs as the caller's user, can read its files, open connections and signal its processes.
    The caller makes itself non-dumpable (`shield_caller`), so its /proc/PID/environ and ptrace are
    closed to the program. Said loudly once per process (`warn_once`): fit for trusted code only.

What it does NOT protect against, in any mode: kernel exploits (this is not a security boundary like
gVisor or a VM); system calls in general (no seccomp filter of its own); the total size of what a run
writes to its private tmpfs (bounded per file by RLIMIT_FSIZE, and by memory); CPU and memory
bandwidth contention with other work on the machine; timing side channels.

Modules: limits.py (SandboxLimits, Isolation, SandboxRun, the child's config), isolation.py
(`probe_isolation`, `warn_once`, `shield_caller`), jail.py (the bubblewrap command), slots.py
(`Sandbox`: worker slots, their fork servers, one run), workdir.py (a run's directory and
environment), collect.py (a run's capped streams, wall timeout and final kill), zygote.py (the fork
server's parent side), stragglers.py (processes found by marker), and confine.py (the child side,
run by file path: never import it here). This module only re-exports.
"""

from adacot.verify.sandbox.isolation import probe_isolation, shield_caller
from adacot.verify.sandbox.limits import Isolation, SandboxLimits, SandboxRun
from adacot.verify.sandbox.slots import Sandbox

__all__ = ["Isolation", "Sandbox", "SandboxLimits", "SandboxRun", "probe_isolation", "shield_caller"]
