"""The bubblewrap command that jails a worker slot's processes: the mount, network and user namespaces.

Called by adacot.verify.sandbox.isolation (the probe) and .slots (each slot's fork server, and each
fresh-interpreter run). Why bubblewrap: a maintained, small setuid-free tool (Flatpak's) that builds
the namespaces and mounts a sandbox needs, as root and as an ordinary user where unprivileged user
namespaces are allowed; hand-written mount code is where sandboxes go wrong.

What the jail gives every process in it: `/` read-only (a recursive read-only bind), private empty
tmpfs on /tmp, /var/tmp, /dev/shm and /run (so /run/secrets and /var/run/secrets, where Kubernetes
mounts service-account tokens, are hidden), a minimal /dev, its own network namespace (a downed
loopback: no connection anywhere), IPC and UTS namespaces; the sandbox's base directory is the one
writable bind. Not root: its own user namespace, in which the fork server is uid 0 with capabilities
(so it can make each run's PID namespace); each run drops them all before the script
(confine.py). Root: no user namespace, so runs still drop to their slot's uid.

Not here, on purpose: bubblewrap's own PID namespace (the fork server must report pids the parent
can signal) and /proc (the host's, bound read-only; each run mounts its own for its PID namespace
before the script, see confine.py). Limits: the tmpfs mounts are not size-limited (bubblewrap 0.8
has no --size); a run's writes are bounded per file by RLIMIT_FSIZE and by its memory.
"""

from __future__ import annotations

import os
import shutil

_PRIVATE = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def find_bwrap() -> str | None:
    """The bubblewrap binary on PATH (Debian/Ubuntu/Fedora package `bubblewrap`), if any."""
    return shutil.which("bwrap")


def jail_command(bwrap: str, userns: bool) -> tuple[str, ...]:
    """The command prefix without the base directory's bind (see `jailed`)."""
    command = [bwrap, "--die-with-parent", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
    command += ["--unshare-cgroup-try"]
    if userns:
        command += ["--unshare-user", "--uid", "0", "--gid", "0"]
    command += ["--ro-bind", "/", "/", "--dev", "/dev", "--ro-bind", "/proc", "/proc"]
    for path in _PRIVATE:
        if os.path.isdir(path) and not os.path.islink(path):
            command += ["--tmpfs", path]
    return (*command, "--cap-add", "ALL")


def jailed(jail: tuple[str, ...], base: str, cwd: str, command: list[str]) -> list[str]:
    """`command` run inside `jail`, with `base` (the workdirs' parent) writable and `cwd` as its
    working directory; `command` unchanged when there is no jail."""
    if not jail:
        return command
    return [*jail, "--bind", base, base, "--chdir", cwd, "--", *command]
