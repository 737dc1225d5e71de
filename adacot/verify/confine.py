"""The sandbox's child side: confine this process, then run the harness script.

Started by adacot.verify.sandbox as `python -s -S -B -P confine.py CONFIG_JSON` in a fresh session.
It imports only a few standard-library modules because every sandboxed sample pays for this start:
heavier imports here cost more than the namespaces and the privilege drop together. Order matters:
namespaces first (they need root), then the PID-namespace fork, rlimits, the privilege drop (after
which nothing privileged can happen), the parent-death signal and non-dumpability, and only then the
harness. See adacot.verify.sandbox for what this does and does not protect against.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def _set_limits(limits: dict[str, float | int | str]) -> None:
    def cap(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_size_bytes"]))
    cap(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    cap(resource.RLIMIT_NOFILE, int(limits["max_open_files"]))
    cap(resource.RLIMIT_CORE, 0)


def _keep_stdlib_reachable() -> None:
    """Re-point sys.path at descriptors of its directories, opened while still privileged."""
    moved = {}
    for entry in sys.path:
        if os.path.isdir(entry):
            moved[entry] = f"/proc/self/fd/{os.open(entry, os.O_RDONLY | os.O_DIRECTORY)}"
    sys.path[:] = list(moved.values())
    sys.path_importer_cache.clear()
    # Packages already imported (encodings, ...) find their submodules through __path__.
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__path__", None)
        if isinstance(package_path, list):
            package_path[:] = [_relocate(item, moved) for item in package_path]


def _relocate(path: str, moved: dict[str, str]) -> str:
    for old, new in moved.items():
        if path == old or path.startswith(old + os.sep):
            return new + path[len(old) :]
    return path


def _drop_privileges(uid: int) -> None:
    _keep_stdlib_reachable()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("privilege drop did not take")


def _launch_in_pidns() -> None:
    """Fork; the child becomes PID 1 of the new namespace, this process waits and mirrors its status."""
    pid = os.fork()
    if pid == 0:
        return
    for fd in (0, 1, 2):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _child_main(cfg: dict[str, Any]) -> None:
    if cfg["probe"]:
        return _probe()
    flags = (_CLONE_NEWNET if cfg["netns"] else 0) | (_CLONE_NEWPID if cfg["pidns"] else 0)
    if flags:
        _unshare(flags)
    if cfg["pidns"]:
        _launch_in_pidns()
    os.umask(0o077)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing
    _set_limits(cfg["limits"])
    if cfg["uid"] is not None:
        _drop_privileges(cfg["uid"])
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program's processes cannot ptrace the harness
    path = os.path.join(cfg["workdir"], cfg["script"])
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    sys.argv = [path, str(cfg["channel_fd"]), *cfg["argv"]]
    exec(code, {"__name__": "__main__", "__file__": path})


def _probe() -> None:
    found = {}
    for name, flag in (("netns", _CLONE_NEWNET), ("pidns", _CLONE_NEWPID)):
        pid = os.fork()
        if pid == 0:
            try:
                _unshare(flag)
            except OSError as exc:
                print(exc, file=sys.stderr)
                os._exit(1)
            os._exit(0)
        found[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    print(json.dumps(found))


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
