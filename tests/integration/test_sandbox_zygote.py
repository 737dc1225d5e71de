"""The sandbox's fork server (zygote): a run forked by it is as isolated as one started as a fresh
interpreter, it holds nothing of the zygote's, a lost zygote is restarted (once) or replaced by the
fresh-interpreter path, and no zygote outlives its sandbox or its parent process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adacot.verify.code import CodeVerifier
from adacot.verify.sandbox import Sandbox, SandboxLimits, probe_isolation, zygote
from adacot.verify.sandbox.stragglers import sandbox_processes

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits(wall_seconds=20, test_seconds=3, memory_bytes=512 << 20)
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces and privilege drop")
PLUS_ONE = {"entry_point": "f", "inputs": [[1], [2]], "outputs": [2, 3]}
# What the harness process itself sees: its descriptors (with what they point to), pid, environment.
INSPECT = """
import json, os, sys
fds = {}
for name in os.listdir('/proc/self/fd'):
    try:
        fds[name] = os.readlink('/proc/self/fd/' + name)
    except OSError:
        pass
report = {'fds': fds, 'pid': os.getpid(), 'uid': os.getuid(), 'env': dict(os.environ), 'argv': sys.argv}
os.write(int(sys.argv[1]), json.dumps(report).encode())
"""


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(LIMITS)
    try:
        yield box
    finally:
        box.close()


def inspect(box: Sandbox) -> dict[str, object]:
    run = box.run(INSPECT, {})
    assert run.exit_code == 0, run.stderr
    report: dict[str, object] = json.loads(run.channel)
    return report


def zygote_pid(box: Sandbox) -> int:
    (server,) = box.servers.values()
    return server.pid


def test_runs_are_forked_by_one_long_lived_zygote(sandbox: Sandbox) -> None:
    inspect(sandbox)
    first = zygote_pid(sandbox)
    for _ in range(3):
        inspect(sandbox)
    assert zygote_pid(sandbox) == first
    with open(f"/proc/{first}/status") as handle:
        assert "Threads:\t1\n" in handle.read()  # single-threaded: a fork copies no lock held elsewhere


def test_the_run_holds_no_descriptor_of_the_zygote(sandbox: Sandbox) -> None:
    report = inspect(sandbox)
    fds: dict[str, str] = report["fds"]  # type: ignore[assignment]
    assert not [target for target in fds.values() if target.startswith("socket:")]
    assert fds["0"] == "/dev/null" and fds["1"].startswith("pipe:") and fds["3"].startswith("pipe:")
    # Besides 0-3: only the stdlib directory descriptors of the privilege drop and listdir's own.
    others = [target for name, target in fds.items() if int(name) > 3]
    assert all(target.startswith("/") and os.path.isdir(target) for target in others), fds


def test_the_candidate_sees_no_socket_either() -> None:
    program = (
        "import os\n"
        "def f(x):\n"
        "    links = []\n"
        "    for name in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            links.append(os.readlink('/proc/self/fd/' + name))\n"
        "        except OSError:\n"
        "            pass\n"
        "    return sum(link.startswith('socket:') for link in links)\n"
    )
    with CodeVerifier(limits=LIMITS) as verifier:
        verdict = verifier.verify(program, {"entry_point": "f", "inputs": [[1]], "outputs": [0]})
    assert verdict.correct is True, verdict.detail


def test_each_run_gets_its_own_environment_marker_and_workdir(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADACOT_TEST_SECRET", "s3cr3t-value")
    first, second = inspect(sandbox), inspect(sandbox)
    env_1, env_2 = first["env"], second["env"]
    assert isinstance(env_1, dict) and isinstance(env_2, dict)
    assert "ADACOT_TEST_SECRET" not in env_1 and "ADACOT_SANDBOX_ZYG" not in env_1
    assert env_1["ADACOT_SANDBOX_RUN"] != env_2["ADACOT_SANDBOX_RUN"]
    assert env_1["ADACOT_SANDBOX_RUN"].startswith(f"{sandbox.id}-")
    assert env_1["HOME"] == env_1["TMPDIR"] != env_2["HOME"]
    argv = first["argv"]
    assert isinstance(argv, list) and argv[0] == os.path.join(env_1["HOME"], "harness_main.py")


@AS_ROOT
def test_namespaces_and_privilege_drop_hold_for_forked_runs(sandbox: Sandbox) -> None:
    report = inspect(sandbox)
    assert report["pid"] == 1  # PID 1 of its own namespace
    assert report["uid"] != 0
    probe = (
        "import json, os, signal, socket, sys\n"
        "found = {}\n"
        "try:\n"
        f"    os.kill({zygote_pid(sandbox)}, signal.SIGKILL)\n"
        "    found['kill'] = 'sent'\n"
        "except OSError as exc:\n"
        "    found['kill'] = type(exc).__name__\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
        "    found['net'] = 'connected'\n"
        "except OSError as exc:\n"
        "    found['net'] = type(exc).__name__\n"
        "os.write(int(sys.argv[1]), json.dumps(found).encode())\n"
    )
    found = json.loads(sandbox.run(probe, {}).channel)
    assert found["kill"] in ("ProcessLookupError", "PermissionError")
    assert found["net"] != "connected"
    assert inspect(sandbox)["pid"] == 1  # the same zygote goes on serving
    assert probe_isolation().pidns and probe_isolation().netns


def test_state_does_not_carry_from_one_run_to_the_next(sandbox: Sandbox) -> None:
    script = (
        "import json, os, random, sys\n"
        "seen = {'leak': getattr(json, 'leak', None)}\n"
        "json.leak = 'from a previous run'\n"
        "seen['random'] = random.random()\n"
        "os.write(int(sys.argv[1]), json.dumps(seen).encode())\n"
    )
    first, second = (json.loads(sandbox.run(script, {}).channel) for _ in range(2))
    assert first["leak"] is None and second["leak"] is None
    assert first["random"] != second["random"]  # `random` seeds itself per run, not once in the zygote


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh"])
@pytest.mark.parametrize(
    ("script", "exit_code", "stderr"),
    [
        ("print('hi')\n", 0, ""),
        ("raise SystemExit(3)\n", 3, ""),
        ("raise SystemExit('bye')\n", 1, "bye"),
        ("raise ValueError('boom')\n", 1, "ValueError: boom"),
        ("def broken(:\n", 1, "SyntaxError"),
        ("import os\nos._exit(7)\n", 7, ""),
    ],
    ids=["ok", "exit_3", "exit_message", "exception", "syntax_error", "os_exit"],
)
def test_exit_status_and_stderr_are_the_same_on_both_paths(
    fork_server: bool, script: str, exit_code: int, stderr: str
) -> None:
    box = Sandbox(LIMITS, fork_server=fork_server)
    try:
        run = box.run(script, {})
        assert bool(box.servers) is fork_server
    finally:
        box.close()
    assert run.exit_code == exit_code, run.stderr
    assert stderr in run.stderr.decode()
    assert run.stdout == (b"hi\n" if script.startswith("print") else b"")


def test_a_killed_zygote_is_restarted(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    inspect(sandbox)
    dead = zygote_pid(sandbox)
    os.kill(dead, signal.SIGKILL)
    time.sleep(0.1)
    with caplog.at_level(logging.WARNING):
        report = inspect(sandbox)
    assert report["argv"] and zygote_pid(sandbox) != dead
    assert "fresh interpreter" not in caplog.text


def test_a_zygote_lost_during_a_run_means_the_run_is_repeated(sandbox: Sandbox) -> None:
    inspect(sandbox)
    dead = zygote_pid(sandbox)
    script = "import os, sys, time\ntime.sleep(1.0)\nos.write(int(sys.argv[1]), b'finished')\n"
    killer = threading.Timer(0.4, os.kill, (dead, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    run = sandbox.run(script, {})
    killer.join()
    assert run.channel == b"finished" and run.exit_code == 0
    assert time.monotonic() - started > 1.3  # the first attempt was cut short, the second completed
    assert zygote_pid(sandbox) != dead
    assert sandbox.live_processes() == []


def test_a_zygote_that_cannot_start_falls_back_to_fresh_interpreters(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(zygote, "CONFINE", "/nonexistent/confine.py")
    with caplog.at_level(logging.WARNING):
        first = inspect(sandbox)
        second = inspect(sandbox)
    assert "was lost twice" in caplog.text and "fresh interpreter" in caplog.text
    assert caplog.text.count("was lost twice") == 1  # said once; the slot stays on the fresh path
    assert sandbox.servers == {}
    assert first["env"] != second["env"]


def test_closing_the_sandbox_stops_its_zygotes() -> None:
    with CodeVerifier(workers=2, limits=LIMITS) as verifier:
        assert list(verifier.verify_many([("def f(x):\n    return x + 1\n", PLUS_ONE)] * 4))
        pids = [server.pid for server in verifier.sandbox.servers.values()]
        assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert sandbox_processes(f"{verifier.sandbox.id}-") == []


def test_zygotes_die_with_their_parent(tmp_path: Path) -> None:
    parent = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from adacot.verify.sandbox import Sandbox\n"
        "box = Sandbox()\n"
        "box.run('pass', {})\n"
        "print(*[server.pid for server in box.servers.values()], flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, timeout=60, check=False)
    pids = [int(pid) for pid in done.stdout.split()]
    assert pids, done.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a dead zygote's zombie waits for init)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_runs_are_found_by_their_marker_while_they_run(sandbox: Sandbox) -> None:
    inspect(sandbox)
    script = "import time\ntime.sleep(1.5)\n"
    runner = threading.Thread(target=sandbox.run, args=(script, {}))
    runner.start()
    deadline, seen = time.monotonic() + 1.2, []
    while time.monotonic() < deadline and not seen:
        seen = sandbox.live_processes()
        time.sleep(0.02)
    runner.join()
    assert seen  # the marker the child wrote over the zygote's placeholder is what /proc shows
    assert zygote_pid(sandbox) not in seen
    assert sandbox.live_processes() == []
