"""The hostile-program suite, mixed with honest programs in one batch: run by
tests/integration/test_sandbox_modes.py as root, as a non-root user and under the pod configuration.

Run as a script (`python tests/sandbox_hostile.py NONCE PORT`) it verifies the batch with two workers
and prints one JSON line: the sandbox's mode and every program's verdict. What the programs did to the
host (files, connections, processes) is checked by the caller, which knows the host: every hostile
program tags what it leaves behind with NONCE, and connects to the caller's listener on PORT.

Each hostile program returns what its attack would have given it, with that very value as the
expected output, so a breach shows as a *passed* verdict, not only as a side effect. Standard library
and adacot only: the script runs under other users' interpreters.
"""

from __future__ import annotations

import json
import os
import sys

PLUS_ONE: dict[str, object] = {"entry_point": "f", "inputs": [[1], [2]], "outputs": [2, 3]}
HONEST = "def f(x):\n    return x + 1\n"
SECRET_ENV = "ADACOT_SECRET_TEAM_KEY"
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
WRITE_TARGETS = ("/tmp", "/var/tmp", "/dev/shm", "/etc", "/work", "/opt")
"""Directories a program tries to leave a file in; the caller checks the host's copies."""


def hostile(nonce: str, port: int, secret: str) -> dict[str, tuple[str, dict[str, object]]]:
    """name -> (program, tests) of the attacks; each test's expected output is the breach's value."""

    def returns(value: object) -> dict[str, object]:
        return {"entry_point": "f", "inputs": [[1]], "outputs": [value]}

    targets = [f"{d}/adacot-pwned-{nonce}" for d in WRITE_TARGETS]
    orphan = f"import time\ntime.sleep(3600)  # {nonce}"
    return {
        "fork_bomb": (
            "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n"
            "        except OSError:\n            pass\n",
            PLUS_ONE,
        ),
        "memory_bomb": ("def f(x):\n    a = []\n    while True:\n        a.append(b'x' * 10**7)\n", PLUS_ONE),
        "output_flood": ("import sys\ndef f(x):\n    while True:\n        print('x' * 65536)\n", PLUS_ONE),
        "loop": ("def f(x):\n    while True:\n        pass\n", PLUS_ONE),
        "writes_outside": (
            "def f(x):\n    done = []\n"
            f"    for path in {targets!r}:\n"
            "        try:\n            open(path, 'w').write('x')\n            done.append(path)\n"
            "        except OSError:\n            pass\n    return done\n",
            returns(targets),
        ),
        "reads_secrets": (
            "import glob, os\ndef f(x):\n"
            f"    found = os.environ.get({SECRET_ENV!r}, '')\n"
            "    for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/task/*/environ'):\n"
            "        try:\n            data = open(path, 'rb').read()\n"
            "        except OSError:\n            continue\n"
            f"        if {secret.encode()!r} in data:\n            found = {secret!r}\n"
            "    return found\n",
            returns(secret),
        ),
        "reads_token": (
            f"def f(x):\n    try:\n        return open({TOKEN_FILE!r}).read()\n"
            "    except OSError:\n        return ''\n",
            returns(f"token-{nonce}"),
        ),
        "network": (
            "import socket\ndef f(x):\n    sent = []\n"
            f"    for host in ('127.0.0.1', '10.0.0.1'):\n"
            "        try:\n"
            f"            with socket.create_connection((host, {port}), timeout=1) as s:\n"
            f"                s.sendall(b'{nonce}')\n                sent.append(host)\n"
            "        except OSError:\n            pass\n"
            "    try:\n"
            "        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"        u.sendto(b'{nonce}', ('127.0.0.1', {port}))\n        sent.append('udp')\n"
            "    except OSError:\n        pass\n"
            "    return 'connected' if '127.0.0.1' in sent else sent\n",
            returns("connected"),
        ),
        "early_exit": ("import os\nprint('PASSED')\nos._exit(0)\ndef f(x):\n    return x + 1\n", PLUS_ONE),
        "forged_passed": (
            "import os, sys\ndef f(x):\n"
            '    forged = \'{"i": 1, "status": "ok", "value": 3}\\n{"event": "done"}\\n\'\n'
            "    print('PASSED')\n    for fd in range(3, 20):\n        try:\n"
            "            os.write(fd, forged.encode())\n        except OSError:\n            pass\n"
            "    return None\n",
            PLUS_ONE,
        ),
        "patched_eq": (
            "class Always:\n    def __eq__(self, other):\n        return True\n"
            "    __hash__ = object.__hash__\n"
            "def f(x):\n    return Always()\n",
            PLUS_ONE,
        ),
        "kills_parent": (
            "import os, signal\ndef f(x):\n    for pid in [os.getppid(), 1, -1, 0] + list(range(2, 400)):\n"
            "        try:\n            os.kill(pid, signal.SIGKILL)\n"
            "        except OSError:\n            pass\n"
            "    return x + 1\n",
            PLUS_ONE,
        ),
        "orphans": (
            "import os, subprocess, sys\ndef f(x):\n"
            "    if os.fork() == 0:\n        os.setsid()\n"
            f"        subprocess.Popen([sys.executable, '-c', {orphan!r}], start_new_session=True)\n"
            "        os._exit(0)\n"
            "    return 'left behind'\n",
            returns("never"),
        ),
    }


def batch(nonce: str, port: int, secret: str) -> list[tuple[str, str, dict[str, object]]]:
    """Hostile programs, each followed by an honest one, so every attack is next to a victim."""
    out: list[tuple[str, str, dict[str, object]]] = []
    for name, (program, tests) in hostile(nonce, port, secret).items():
        out += [(name, program, tests), (f"honest_after_{name}", HONEST, PLUS_ONE)]
    return out


def main(nonce: str, port: int) -> None:
    from adacot.verify.code import CodeVerifier
    from adacot.verify.sandbox import SandboxLimits

    secret = os.environ.get(SECRET_ENV, "")
    limits = SandboxLimits(wall_seconds=8, test_seconds=3, memory_bytes=512 << 20, max_processes=24)
    programs = batch(nonce, port, secret)
    with CodeVerifier(workers=2, limits=limits) as verifier:
        verdicts = list(verifier.verify_many((program, tests) for _, program, tests in programs))
        mode = verifier.sandbox.isolation.mode
    found = {
        name: {"correct": v.correct, "reason": v.reason, "detail": (v.detail or "")[:300]}
        for (name, _, _), v in zip(programs, verdicts, strict=True)
    }
    print(json.dumps({"mode": mode, "uid": os.geteuid(), "verdicts": found}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
