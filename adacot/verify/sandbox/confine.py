"""The sandbox's child side: confine a process, then run the harness script in it.

Two modes, both started by the parent (adacot.verify.sandbox.slots, adacot.verify.sandbox.zygote) as
`python -s -S -B -P confine.py CONFIG_JSON` in a fresh session:
  * one run (CONFIG has `workdir`, ...): confine this very process and run the script; the fallback
    path, one fresh interpreter per run;
  * serve (CONFIG has `serve`, a socket fd): the fork server ("zygote"). It preloads the standard
    library modules the harness uses, then answers requests on its socket: each brings three pipe
    write ends (stdout, stderr, result channel) and a JSON run config; the zygote forks, replies with
    the child's pid and later with its exit status. The zygote itself never runs the script or
    candidate code and stays single-threaded, so a fork copies no lock held by another thread.

The forked child first cuts every tie to the zygote (socket and all other descriptors closed, own
session, fds 1/2/3 = the run's pipes), writes the run's marker into its environment block, and then
does what one-run mode does, with two steps moved into the zygote: it unshares the PID namespace just
before the fork (and steps back after), so the child is PID 1 itself instead of forking once more;
and when runs drop privileges it re-points sys.path at directory descriptors once, at start-up.
Order matters: namespaces first (they need root), then the PID-namespace fork, rlimits, the
privilege drop (after which nothing privileged can happen), the parent-death signal and
non-dumpability, and only then the script. Imports are standard library only and few, because a
one-run start pays for each. See adacot.verify.sandbox for what this does and does not protect
against.
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
    from types import CodeType
    from typing import Any

_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPABILITY_V3 = 0x20080522
_LIBC: ctypes.CDLL | None = None
_SERVED_CHANNEL_FD = 3
"""Where a served child finds its result channel (stdout and stderr are 1 and 2)."""
_PRELOAD = (
    "contextlib json selectors signal time traceback hashlib typing "  # the harness's own
    "bisect collections functools heapq itertools math operator re string"  # what programs often import
)
"""Modules the zygote imports once for all its children. Not `random` or `tempfile`: a module that
seeds itself at import would hand every child the same state."""


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_proc() -> None:
    """A mount namespace of the run's own with a /proc of its PID namespace: the run sees its own
    processes only, not the host's /proc that the jail binds. Needs the run to be PID 1 already."""
    libc = _libc()
    _unshare(_CLONE_NEWNS)
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None), "mount /proc")


def _drop_capabilities() -> None:
    """Root of a user namespace holds every capability there: drop them all (bounding set, ambient,
    effective/permitted/inheritable), for good (no_new_privs)."""
    libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header, data = (ctypes.c_uint32 * 2)(_CAPABILITY_V3, 0), (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")


def _set_limits(limits: dict[str, float | int | str]) -> None:
    def cap(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_size_bytes"]))
    cap(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    cap(resource.RLIMIT_NOFILE, int(limits["max_open_files"]))
    cap(resource.RLIMIT_CORE, 0)


def _keep_stdlib_reachable() -> list[int]:
    """Re-point sys.path at descriptors of its directories, opened while still privileged; returns
    the descriptors."""
    moved, fds = {}, []
    for entry in sys.path:
        if os.path.isdir(entry):
            fds.append(os.open(entry, os.O_RDONLY | os.O_DIRECTORY))
            moved[entry] = f"/proc/self/fd/{fds[-1]}"
    sys.path[:] = list(moved.values())
    sys.path_importer_cache.clear()
    # Packages already imported (encodings, ...) find their submodules through __path__.
    for module in list(sys.modules.values()):
        package_path = getattr(module, "__path__", None)
        if isinstance(package_path, list):
            package_path[:] = [_relocate(item, moved) for item in package_path]
    return fds


def _relocate(path: str, moved: dict[str, str]) -> str:
    for old, new in moved.items():
        if path == old or path.startswith(old + os.sep):
            return new + path[len(old) :]
    return path


def _drop_privileges(uid: int, relocate: bool) -> None:
    if relocate:
        _keep_stdlib_reachable()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("privilege drop did not take")


def _launch_in_pidns(channel_fd: int) -> None:
    """Fork; the child becomes PID 1 of the new namespace, this process waits and mirrors its status."""
    pid = os.fork()
    if pid == 0:
        return
    for fd in (0, 1, 2, channel_fd):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _confine(cfg: dict[str, Any], relocate: bool = True) -> None:
    """Namespaces, PID-1 fork, rlimits, privilege drop, parent-death signal, non-dumpable."""
    flags = (_CLONE_NEWNET if cfg["netns"] else 0) | (_CLONE_NEWPID if cfg["pidns"] else 0)
    if flags:
        _unshare(flags)
    if cfg["pidns"]:
        _launch_in_pidns(cfg["channel_fd"])
    if cfg.get("own_proc"):
        _private_proc()
    os.umask(0o077)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing
    _set_limits(cfg["limits"])
    if cfg["uid"] is not None:
        _drop_privileges(cfg["uid"], relocate)
    if cfg.get("drop_caps"):
        _drop_capabilities()
    libc = _libc()
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary gives a run back what it lost
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program's processes cannot ptrace the harness


def _child_main(cfg: dict[str, Any]) -> None:
    if cfg.get("serve") is not None:
        return _serve(cfg)
    if cfg["probe"]:
        return _probe()
    _confine(cfg)
    path = os.path.join(cfg["workdir"], cfg["script"])
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    sys.argv = [path, str(cfg["channel_fd"]), *cfg["argv"]]
    exec(code, {"__name__": "__main__", "__file__": path})


def _probe() -> None:
    """Which namespaces a run could make here; `proc`: a private /proc in a PID namespace."""
    found = {}
    for name, flag in (("netns", _CLONE_NEWNET), ("pidns", _CLONE_NEWPID), ("proc", _CLONE_NEWPID)):
        pid = os.fork()
        if pid == 0:
            try:
                _unshare(flag)
                if name == "proc" and os.fork() == 0:  # PID 1 of the new namespace
                    _private_proc()
                    os._exit(0)
                if name == "proc":
                    os._exit(os.waitstatus_to_exitcode(os.wait()[1]))
            except OSError as exc:
                print(exc, file=sys.stderr)
                os._exit(1)
            os._exit(0)
        found[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    print(json.dumps(found))


# ----------------------------------------------------------------------------- serve mode (zygote)


class _Zygote:
    """The fork server: one request at a time, until the parent closes its end of the socket."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        import gc
        import socket

        self.cfg = cfg
        self.server = socket.socket(fileno=cfg["serve"])
        self.codes: dict[str, CodeType | None] = {}
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY) if cfg["pidns"] else -1
        self.pidfd = os.pidfd_open(os.getpid())  # readable once the zygote has died
        self.keep: list[int] = []  # descriptors a child keeps: the stdlib directories
        for name in _PRELOAD.split():
            __import__(name)
        if cfg["relocate"]:  # once here instead of in every child (see _keep_stdlib_reachable)
            self.keep = _keep_stdlib_reachable()
            from importlib.machinery import PathFinder

            PathFinder.find_spec("_adacot_prime_the_finders")  # children inherit warm directory caches
        gc.freeze()  # children share these pages instead of copying them when the collector runs

    def serve(self) -> None:
        import socket

        self.server.send(b'{"ready": true}')
        last = 0
        while True:
            message, fds, _, _ = socket.recv_fds(self.server, 1 << 16, 3)
            if last:
                os.waitpid(last, 0)  # kept as a zombie until now, so its pid and group stayed reserved
                last = 0
            if not message:  # the parent closed its end, or died
                return
            try:
                last = self.fork_run(json.loads(message), fds)
            except Exception as exc:
                self.server.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                continue
            finally:
                for fd in fds:
                    os.close(fd)
            self.server.send(json.dumps({"pid": last}).encode())
            self.server.send(json.dumps({"status": _exit_status(last)}).encode())

    def fork_run(self, request: dict[str, Any], fds: list[int]) -> int:
        """Fork the run's child; return once it has its own session and holds none of our descriptors.

        With a PID namespace the child is its PID 1 directly: the zygote unshares the namespace for
        its next child only and steps back into its own right after the fork."""
        code = self.compiled(os.path.join(request["workdir"], request["script"]), request["script"])
        ready_read, ready_write = os.pipe()
        if self.own_pidns >= 0:
            _unshare(_CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                _served_child(self, request, fds, code)
        finally:
            if self.own_pidns >= 0 and _libc().setns(self.own_pidns, _CLONE_NEWPID) != 0:
                raise SystemExit(f"setns back into the zygote's PID namespace: errno {ctypes.get_errno()}")
        os.close(ready_write)
        os.read(ready_read, 1)  # EOF: the child has called setsid() and closed everything of ours
        os.close(ready_read)
        return pid

    def compiled(self, path: str, name: str) -> CodeType | str:
        """The script's code object, cached by its text; the text itself when it does not compile
        (the child compiles it again and reports the error on its own stderr)."""
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        if source not in self.codes:
            if len(self.codes) >= 4:
                self.codes.clear()
            try:
                self.codes[source] = compile(source, name, "exec")
            except (SyntaxError, ValueError):
                self.codes[source] = None
        return self.codes[source] or source


def _serve(cfg: dict[str, Any]) -> None:
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if cfg["parent"] and os.getppid() != cfg["parent"]:  # the parent died before the line above
        return
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # no process of the caller's uid can ptrace the zygote
    _Zygote(cfg).serve()


def _exit_status(pid: int) -> int:
    """Like Popen.returncode; the child is left a zombie (WNOWAIT) until the next request."""
    found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert found is not None
    return found.si_status if found.si_code == os.CLD_EXITED else -found.si_status


def _served_child(zygote: _Zygote, request: dict[str, Any], fds: list[int], code: CodeType | str) -> None:
    """In the zygote's child: never returns into the zygote's loop."""
    import select

    status = 1
    try:
        zygote.server.close()
        libc = _libc()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if select.select([zygote.pidfd], [], [], 0)[0]:
            return  # the zygote died before the line above: nobody would collect this run
        os.setsid()
        _adopt_descriptors(fds, zygote.keep)
        libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # as a fresh process: visible to the marker scan
        _mark_environment(zygote.cfg["placeholder"], request["marker"], request["env"])
        os.chdir(request["workdir"])
        # The PID namespace is made (unless the zygote could not: a user namespace), the stdlib
        # already reachable.
        made = zygote.own_pidns >= 0
        _confine(request | {"channel_fd": _SERVED_CHANNEL_FD, "pidns": request["pidns"] and not made}, False)
        status = _run_code(code, request)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                status = status or 1
        os._exit(status)


def _adopt_descriptors(fds: list[int], keep: list[int]) -> None:
    """stdout, stderr and the channel onto 1, 2 and 3 (received fds are >= 3 and ascending, so none
    is overwritten before it is copied); fd 0 stays /dev/null; everything else is closed except
    `keep`: the zygote's socket and log, the ready pipe, the received originals."""
    for target, fd in zip((1, 2, _SERVED_CHANNEL_FD), fds, strict=True):
        os.dup2(fd, target)
    low = _SERVED_CHANNEL_FD + 1
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _mark_environment(placeholder: str, marker: str, env: dict[str, str]) -> None:
    """Write the run's marker over the zygote's placeholder entry in the initial environment block:
    that block is what /proc/PID/environ shows, and the parent finds a run's processes by it. Then
    set os.environ (HOME, TMPDIR, marker), which processes the program starts inherit."""
    with open("/proc/self/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start and env_end, fields 50 and 51
    offset, new = 0, marker.encode()
    for entry in ctypes.string_at(start, end - start).split(b"\0"):
        if entry.startswith(placeholder.encode() + b"=") and len(entry) == len(new):
            ctypes.memmove(start + offset, new, len(new))
            break
        offset += len(entry) + 1
    else:
        raise OSError(f"no {placeholder} entry of {len(new)} bytes in the environment block")
    os.environ.pop(placeholder, None)
    os.environ.update(env)


def _run_code(code: CodeType | str, request: dict[str, Any]) -> int:
    """Run the script as __main__, as the interpreter would; return the exit status it would have."""
    path = os.path.join(request["workdir"], request["script"])
    sys.argv = [path, str(_SERVED_CHANNEL_FD), *request["argv"]]
    try:
        if isinstance(code, str):
            code = compile(code, request["script"], "exec")
        exec(code, {"__name__": "__main__", "__file__": path})
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0) & 0xFF
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
