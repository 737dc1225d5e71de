"""The Sandbox: worker slots, each with its own uid and fork server, and one run through a slot.

Called by adacot.verify.code (one Sandbox per CodeVerifier, one slot per worker thread). A run takes a
free slot, writes the script and its files into a fresh workdir (adacot.verify.sandbox.workdir),
launches the confined child through the slot's zygote (adacot.verify.sandbox.zygote) or, as a
fallback, as a fresh interpreter, and collects it (adacot.verify.sandbox.collect). A slot whose zygote
is lost is restarted once and the run repeated; when that fails too the slot starts a fresh
interpreter per run from then on, with a warning. Both paths give the guarantees listed in
adacot.verify.sandbox; this module only decides which path a run takes.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from adacot.verify.sandbox.collect import Child, Launch, collect, start
from adacot.verify.sandbox.isolation import probe_isolation, shield_caller, warn_once
from adacot.verify.sandbox.jail import jailed
from adacot.verify.sandbox.limits import ChildConfig, SandboxLimits, SandboxRun
from adacot.verify.sandbox.stragglers import MARKER, sandbox_processes
from adacot.verify.sandbox.workdir import base_env, populate, remove_tree, workdir_root
from adacot.verify.sandbox.zygote import CONFINE, ForkServer, FreshChild, ZygoteLost

log = logging.getLogger(__name__)
_SCRIPT = "harness_main.py"


class Sandbox:
    """Runs scripts confined; thread-safe, one worker slot (uid, fork server) per concurrent run."""

    def __init__(self, limits: SandboxLimits | None = None, slots: int = 1, fork_server: bool = True) -> None:
        self.limits = limits or SandboxLimits()
        self.isolation = probe_isolation(self.limits.python, self.limits.namespaces)
        warn_once(self.isolation)
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
        self._base = tempfile.mkdtemp(prefix="adacot-sandbox-", dir=workdir_root())
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

    def _launch_served(self, slot: int) -> Launch:
        def launch(cfg: ChildConfig, token: str, fds: list[int]) -> Child:
            env = {"HOME": cfg.workdir, "TMPDIR": cfg.workdir, MARKER: token}
            return self._server(slot).spawn(asdict(cfg), token, env, fds)

        return launch

    def _server(self, slot: int) -> ForkServer:
        server = self.servers.get(slot)
        if server is None or not server.alive:
            self._retire(slot)
            env = base_env(self._base, "")
            del env[MARKER]
            start_server = self._launcher.submit(
                ForkServer,
                self.limits.python,
                env,
                MARKER,
                len(self._token()),
                self.isolation.pidns,
                self.isolation.drop_privileges,
                self.isolation.jail,
                self._base,
                self.isolation.userns,
            )
            server = self.servers[slot] = start_server.result()
        return server

    def _retire(self, slot: int) -> None:
        server = self.servers.pop(slot, None)
        if server is not None:
            server.stop()

    def _token(self) -> str:
        return f"{self.id}-{secrets.token_hex(8)}"

    def _launch_fresh(self, cfg: ChildConfig, token: str, fds: list[int]) -> Child:
        stdout, stderr, cfg.channel_fd = fds
        command = [str(cfg.limits["python"]), "-s", "-S", "-B", "-P", CONFINE, json.dumps(asdict(cfg))]
        proc = subprocess.Popen(
            jailed(self.isolation.jail, self._base, cfg.workdir, command),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(cfg.channel_fd,),
            env=base_env(cfg.workdir, token),
            cwd=cfg.workdir,
            start_new_session=True,
            close_fds=True,
        )
        return FreshChild(proc)

    def _run_once(
        self,
        launch: Launch,
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
            populate(workdir, {**files, _SCRIPT: script.encode()}, uid)
            cfg = ChildConfig(
                workdir=workdir,
                script=_SCRIPT,
                channel_fd=-1,
                limits=asdict(limits),
                netns=self.isolation.netns and not self.isolation.jail,  # the jail has its own
                pidns=self.isolation.pidns,
                uid=uid,
                argv=argv,
                own_proc=bool(self.isolation.jail),
                drop_caps=self.isolation.userns,
            )
            started = time.monotonic()
            child, reads = start(launch, cfg, token)
            result = collect(child, reads, limits, token, not self.isolation.pidns)
            result.seconds = time.monotonic() - started
            result.isolation = self.isolation
            return result
        finally:
            remove_tree(workdir)
