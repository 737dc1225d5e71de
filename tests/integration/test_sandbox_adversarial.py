"""Hostile programs against the code verifier: each is contained, each ends in a failed verdict, and
the host (files, processes, secrets, network) and this test run are unaffected.

Most programs attack and then return what the attack would have given them, with that very value as
the expected output: a breach shows up as a *passed* verdict, not only as a side effect.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adacot.verify.code import CodeVerifier
from adacot.verify.sandbox import Sandbox, SandboxLimits, probe_isolation

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits(wall_seconds=20, test_seconds=3, memory_bytes=512 << 20, max_processes=24)
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces and privilege drop")
PLUS_ONE = {"entry_point": "f", "inputs": [[1], [2]], "outputs": [2, 3]}


@pytest.fixture(scope="module")
def verifier() -> Iterator[CodeVerifier]:
    with CodeVerifier(workers=1, limits=LIMITS) as v:
        yield v


def assert_host_intact(verifier: CodeVerifier) -> None:
    """No sandboxed process survives, and the verifier still judges a correct program correct."""
    assert verifier.sandbox.live_processes() == []
    assert verifier.verify("def f(x):\n    return x + 1\n", PLUS_ONE).correct is True


def test_fork_bomb_is_contained_and_leaves_no_process(verifier: CodeVerifier) -> None:
    bomb = (
        "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n"
    )
    started = time.monotonic()
    verdict = verifier.verify(bomb, PLUS_ONE)
    assert verdict.correct is False and verdict.reason in ("timeout", "runtime_error")
    assert time.monotonic() - started < LIMITS.wall_seconds + 10
    assert_host_intact(verifier)


def test_memory_bomb_fails_inside_the_limit(verifier: CodeVerifier) -> None:
    bomb = "def f(x):\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**7))\n"
    verdict = verifier.verify(bomb, PLUS_ONE)
    assert verdict.correct is False and verdict.reason == "runtime_error"
    assert "MemoryError" in (verdict.detail or "")
    assert_host_intact(verifier)


def test_one_huge_allocation_is_refused(verifier: CodeVerifier) -> None:
    verdict = verifier.verify("def f(x):\n    return len(bytearray(4 << 30))\n", PLUS_ONE)
    assert verdict.reason == "runtime_error" and "MemoryError" in (verdict.detail or "")


def test_infinite_loop_killed_by_the_wall_timeout() -> None:
    limits = SandboxLimits(wall_seconds=2, test_seconds=60)
    started = time.monotonic()
    with CodeVerifier(limits=limits) as v:
        verdict = v.verify("def f(x):\n    while True:\n        pass\n", PLUS_ONE)
        assert v.sandbox.live_processes() == []
    assert verdict.correct is False and verdict.reason == "timeout"
    assert "wall-clock" in (verdict.detail or "")
    assert time.monotonic() - started < 30


def test_huge_output_is_capped(verifier: CodeVerifier) -> None:
    flood = "def f(x):\n    while True:\n        print('y' * 100000)\n"
    verdict = verifier.verify(flood, PLUS_ONE)
    assert verdict.correct is False and verdict.reason == "output_limit"
    assert "stdout" in (verdict.detail or "")
    assert_host_intact(verifier)


def test_sandbox_run_output_is_read_with_a_cap() -> None:
    sandbox = Sandbox(SandboxLimits(stdout_bytes=1000))
    try:
        run = sandbox.run("import sys\nsys.stdout.write('z' * 10**7)\n", {})
    finally:
        sandbox.close()
    assert run.overflow == "stdout" and len(run.stdout) == 1000


@AS_ROOT
def test_writing_outside_the_workdir_is_refused(verifier: CodeVerifier, tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    program = f"def f(x):\n    open({str(marker)!r}, 'w').write('x')\n    return 'written'\n"
    verdict = verifier.verify(program, {"entry_point": "f", "inputs": [[1]], "outputs": ["written"]})
    # Read-only everywhere but the workdir; /tmp (where tmp_path lies) is the jail's own, empty.
    assert verdict.correct is False
    assert any(e in (verdict.detail or "") for e in ("PermissionError", "FileNotFoundError", "Read-only"))
    assert not marker.exists()


@AS_ROOT
def test_environment_secrets_are_not_readable(
    verifier: CodeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADACOT_TEST_SECRET", "s3cr3t-value")
    program = (
        "import os, glob\n"
        "def f(x):\n"
        "    found = os.environ.get('ADACOT_TEST_SECRET', '')\n"
        "    for path in glob.glob('/proc/*/environ'):\n"
        "        try:\n"
        "            data = open(path, 'rb').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if b's3cr3t-value' in data:\n"
        "            found = 's3cr3t-value'\n"
        "    return found\n"
    )
    verdict = verifier.verify(program, {"entry_point": "f", "inputs": [[1]], "outputs": ["s3cr3t-value"]})
    assert verdict.correct is False and verdict.reason == "failed_test"
    assert "got ''" in (verdict.detail or "")


@AS_ROOT
def test_network_connection_is_not_accepted(verifier: CodeVerifier) -> None:
    assert probe_isolation().netns
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.setblocking(False)
        port = server.getsockname()[1]
        program = (
            "import socket\n"
            "def f(x):\n"
            f"    with socket.create_connection(('127.0.0.1', {port}), timeout=2) as s:\n"
            "        s.sendall(b'leak')\n"
            "    return 'connected'\n"
        )
        verdict = verifier.verify(program, {"entry_point": "f", "inputs": [[1]], "outputs": ["connected"]})
        assert verdict.correct is False and verdict.reason == "runtime_error"
        # The jail's network namespace has a loopback of its own (refused), bare ones none (unreachable).
        assert any(e in (verdict.detail or "").lower() for e in ("unreachable", "refused"))
        with pytest.raises(BlockingIOError):
            server.accept()


def test_killing_the_parent_and_harness_fails(verifier: CodeVerifier) -> None:
    program = (
        "import os, signal\n"
        "def f(x):\n"
        "    for pid in (os.getppid(), 1, -1, 0):\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
    )
    verdict = verifier.verify(program, PLUS_ONE)
    assert verdict.correct is False and verdict.reason == "runtime_error"
    assert verdict.passed == 0
    os.kill(os.getpid(), 0)  # this test process still lives
    assert_host_intact(verifier)


def test_early_exit_zero_is_not_success(verifier: CodeVerifier) -> None:
    program = "import os\nprint('PASSED')\nos._exit(0)\ndef f(x):\n    return x + 1\n"
    verdict = verifier.verify(program, PLUS_ONE)
    assert verdict.correct is False and verdict.passed == 0


def test_printing_passed_and_forged_records_is_not_success(verifier: CodeVerifier) -> None:
    program = (
        "import os, sys\n"
        "def f(x):\n"
        '    forged = \'{"i": 0, "status": "ok", "value": 2}\\n{"event": "done"}\\n\'\n'
        "    print('PASSED'); print('all tests passed', file=sys.stderr)\n"
        "    for fd in range(3, 20):\n"
        "        try:\n"
        "            os.write(fd, forged.encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    return None\n"
    )
    verdict = verifier.verify(program, PLUS_ONE)
    # The forged record for test 0 carries that test's true answer (2): forging it is no different
    # from returning it, so it may count; test 1 still fails, and nothing forged can end the run early.
    assert verdict.correct is False and verdict.passed is not None and verdict.passed <= 1


def test_a_result_line_that_only_looks_right_fails_its_own_test(verifier: CodeVerifier) -> None:
    # The harness forwards result lines in the worker's layout without parsing them (a value can be
    # megabytes); one with the right prefix and garbage after it must fail, never pass or crash.
    program = (
        "import os\n"
        "def f(x):\n"
        "    if x == 1:\n"
        '        line = b\'{"i": 0, "status": "ok", "value": 2, "i": [}\\n\'\n'
        "        for fd in range(3, 20):\n"
        "            try:\n"
        "                os.write(fd, line)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return x + 1\n"
    )
    verdict = verifier.verify(program, PLUS_ONE)
    assert verdict.correct is False and verdict.passed is not None and verdict.passed < 2
    honest = verifier.verify("def f(x):\n    return x + 1\n", PLUS_ONE)
    assert honest.correct is True and honest.passed == 2


def test_patching_eq_is_not_success(verifier: CodeVerifier) -> None:
    program = (
        "class Always:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = object.__hash__\n"
        "class AlwaysInt(int):\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = int.__hash__\n"
        "def f(x):\n"
        "    return Always() if x == 1 else AlwaysInt(-5)\n"
    )
    verdict = verifier.verify(program, PLUS_ONE)
    assert verdict.correct is False and verdict.reason == "failed_test" and verdict.passed == 0
    assert "got <Always" in (verdict.detail or "")


def test_patching_builtins_json_and_comparison_is_not_success(verifier: CodeVerifier) -> None:
    program = (
        "import builtins, json, operator\n"
        "class Always:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = object.__hash__\n"
        "class AlwaysInt(int):\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = int.__hash__\n"
        "builtins.isinstance = lambda *a: True\n"
        "operator.eq = lambda a, b: True\n"
        'json.dumps = lambda *a, **k: \'{"i": 0, "status": "ok", "value": 2}\'\n'
        "try:\n"
        "    import adacot.verify.code_tests as ct\n"
        "    ct.outputs_match = lambda *a, **k: True\n"
        "except ImportError:\n"
        "    pass\n"
        "def f(x):\n"
        "    return Always() if x == 1 else AlwaysInt(-5)\n"
    )
    verdict = verifier.verify(program, PLUS_ONE)
    # Patched isinstance breaks the worker's own encoder: its results go missing, never "pass".
    assert verdict.correct is False and verdict.passed == 0
    assert_host_intact(verifier)
