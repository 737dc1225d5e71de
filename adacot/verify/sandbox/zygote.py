"""Parent side of the sandbox's fork server ("zygote"), and the handles of a run's process.

Called by adacot.verify.sandbox.slots: one `ForkServer` per worker slot, started on the slot's first run. A
fresh interpreter with imports costs ~30 ms per run; a fork of a warm one costs ~1 ms, so each slot
keeps one `confine.py` process in serve mode (see adacot.verify.sandbox.confine), started once with the
same environment as a run's (built from scratch, no secrets) and stdin on /dev/null. Per run, the
parent sends the write ends of fresh pipes with `socket.send_fds` plus the run's JSON config over a
SOCK_SEQPACKET socketpair; the zygote forks and answers {"pid"} and later {"status"} (keeping the
child a zombie until its next request, so the pid and process group id cannot be reused while the
parent still kills by them). The parent keeps every guarantee of its own: the wall timeout, killing
the process group, the capped reads, the marker scan. The zygote's children are identified by the
marker the child writes over the zygote's placeholder (`_PLACEHOLDER`), so the zygote itself never
matches a run's marker. A served child is PID 1 of its namespace, and the kernel empties a PID
namespace before its init's exit can be observed: once the status has come, nothing of the run is
left and the marker scan is skipped (`ServedChild.namespace_gone`).

Failure handling: a zygote that exits, answers garbage or stays silent raises `ZygoteLost`; the
sandbox then restarts it once and repeats the run, and falls back to a fresh interpreter per run
(`FreshChild`) for that slot when the restart fails too. A zygote dies with its parent
(PR_SET_PDEATHSIG, and the socket's EOF), and its children with it (PDEATHSIG again); a `ForkServer`
is meant to be created from a thread that lives as long as the sandbox, because PDEATHSIG fires when
the *thread* that forked the zygote ends.

Limits: /proc/PID/environ of a served run shows the zygote's HOME and TMPDIR (the sandbox's base
directory); os.environ, which the program sees and passes on, has the run's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
from typing import Any

from adacot.verify.sandbox.jail import jailed

CONFINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "confine.py")
"""The child side's entry point, for both one-run mode and serve mode."""
_PLACEHOLDER = "ADACOT_SANDBOX_ZYG"
"""Environment entry of the zygote; each child overwrites it with the run's marker of equal length."""
_START_SECONDS = 30.0
_ANSWER_SECONDS = 30.0
"""How long a live zygote may take to fork (or to report a killed child's status)."""
_STOP_SECONDS = 2.0


class ZygoteLost(Exception):
    """The fork server died or misbehaved; the run did not complete through it."""


class ForkServer:
    """One zygote process and the parent's end of its socket; used by one thread at a time."""

    def __init__(
        self,
        python: str,
        env: dict[str, str],
        marker: str,
        token_chars: int,
        pidns: bool,
        relocate: bool,
        jail: tuple[str, ...] = (),
        base: str = "/",
        userns: bool = False,
    ) -> None:
        """Start the zygote and wait until it is ready; raises ZygoteLost when it does not start.

        `env` is the runs' environment without the marker `marker`; the zygote carries a placeholder
        of `token_chars` characters instead. With `pidns` each child is PID 1 of a new PID namespace;
        `relocate`: runs drop privileges, so the zygote re-points sys.path at descriptors first.
        `jail`: the bubblewrap prefix the zygote runs in (adacot.verify.sandbox.jail), `base` the
        directory of the runs' workdirs, writable there. `userns`: the jail is a user namespace, where
        the zygote could not step back into its own PID namespace, so each child makes its own and
        forks once more (confine._launch_in_pidns)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        # The zygote's own stderr, kept for the message when it fails; closed in stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.marker, self.pidns = marker, pidns
        self.alive = True
        cfg = {
            "serve": theirs.fileno(),
            "parent": 0 if jail else os.getpid(),  # in a jail its parent is bubblewrap
            "placeholder": _PLACEHOLDER,
            "pidns": pidns and not userns,
            "relocate": relocate,
        }
        try:
            self._proc = subprocess.Popen(
                jailed(jail, base, base, [python, "-s", "-S", "-B", "-P", CONFINE, json.dumps(cfg)]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                pass_fds=(theirs.fileno(),),
                env={**env, _PLACEHOLDER: "0" * token_chars},
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            self._sock.close()
            raise ZygoteLost(f"fork server did not start: {exc}") from exc
        finally:
            theirs.close()
        self._answer("ready", _START_SECONDS)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def spawn(self, config: dict[str, Any], token: str, env: dict[str, str], fds: list[int]) -> ServedChild:
        """Start one run: `config` as for one-run mode, `env` the run's own variables."""
        request = config | {"marker": f"{self.marker}={token}", "env": env}
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
        except OSError as exc:
            raise self._lost(f"cannot send to the fork server: {exc}") from exc
        return ServedChild(self, int(self._answer("pid", _ANSWER_SECONDS)))

    def answered_status(self, wait: float | None) -> int | None:
        """The exit status of the current run, if it has come (waiting up to `wait` seconds)."""
        return int(self._answer("status", wait))

    @property
    def fileno(self) -> int:
        """Readable when the current run's status has come (or the zygote is gone)."""
        return self._sock.fileno()

    def stop(self) -> None:
        """Stop the zygote and collect it: on EOF it reaps its last child and exits; killed if not."""
        self.alive = False
        self._sock.close()
        try:
            self._proc.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    def _answer(self, key: str, wait: float | None) -> Any:
        """Read one message and return its `key`; raises BlockingIOError when none came in time."""
        self._sock.settimeout(wait)
        try:
            data = self._sock.recv(1 << 12)
        except (BlockingIOError, TimeoutError):  # non-blocking (wait 0) or timed out
            if wait == 0:
                raise BlockingIOError from None
            raise self._lost(f"no answer from the fork server within {wait} s") from None
        except OSError as exc:
            raise self._lost(f"fork server socket failed: {exc}") from exc
        if not data:
            raise self._lost("fork server exited")
        try:
            message = json.loads(data)
            return message[key]
        except (ValueError, KeyError, TypeError):
            raise self._lost(f"unexpected answer from the fork server: {data[:200]!r}") from None

    def _lost(self, why: str) -> ZygoteLost:
        self.alive = False
        with contextlib.suppress(OSError, ValueError):
            self._log.seek(0)
            tail = self._log.read()[-500:].decode(errors="replace").strip()
            why = f"{why}: {tail}" if tail else why
        return ZygoteLost(why)


class ServedChild:
    """A run's process forked by a zygote; the interface `FreshChild` has too."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None
        self._done = False

    def exit_fd(self) -> int | None:
        return self.server.fileno

    @property
    def namespace_gone(self) -> bool:
        """True once its exit was seen and it was PID 1 of its namespace: the kernel empties a PID
        namespace before its init's exit can be observed, so nothing of the run is left."""
        return self.server.pidns and self._done and self.returncode is not None

    def poll(self) -> int | None:
        """The exit status when the run has ended; raises ZygoteLost when the zygote died."""
        if not self._done:
            try:
                self.returncode, self._done = self.server.answered_status(0), True
            except BlockingIOError:
                return None
        return self.returncode

    def wait(self) -> int | None:
        """Called after the group was killed; None when the zygote was lost on the way."""
        if not self._done:
            self._done = True
            with contextlib.suppress(ZygoteLost):
                self.returncode = self.server.answered_status(_ANSWER_SECONDS)
        return self.returncode

    def close(self) -> None:
        pass


class FreshChild:
    """A run's process started as a fresh interpreter (the fallback path)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.pid = proc, proc.pid
        try:
            self._pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def namespace_gone(self) -> bool:
        """False: this process is not the namespace's init (see confine._launch_in_pidns)."""
        return False

    def exit_fd(self) -> int | None:
        return self._pidfd

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self) -> int | None:
        return self.proc.wait()

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
