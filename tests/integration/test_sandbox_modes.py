"""The hostile suite (tests/sandbox_hostile.py) mixed with honest programs, in each mode a verifier
runs in: as root, as a non-root user, and under a stage pod's configuration. Every honest program
passes, every hostile one fails, and the host shows nothing of them: no file, no connection, no
process, no secret or token read.

The non-root and pod verifiers are started as other users from this (root) test, each in a private
mount namespace where /root is a traversable stand-in holding only the interpreter's tree (this
machine's interpreter lies under /root, mode 0700). The pod configuration is what the operator gives a
stage container: uid 10001, no_new_privs, no capabilities, a read-only root file system with a
writable /tmp (emptyDir) and a 64 MiB /dev/shm, a working directory it cannot write, and a secret in
its environment (a secretKeyRef env var). A token file sits where Kubernetes would mount one, to show
a program could not read it even if a pod had one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sandbox_hostile import SECRET_ENV, TOKEN_FILE, WRITE_TARGETS, hostile

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0
        or not all(shutil.which(t) for t in ("unshare", "setpriv"))
        # CI installs bubblewrap (make setup): there, a missing one fails the tests instead
        or (shutil.which("bwrap") is None and os.environ.get("CI") != "true"),
        reason="needs root, unshare, setpriv and bubblewrap to start verifiers as other users",
    ),
]

SCRIPT = Path(__file__).resolve().parents[1] / "sandbox_hostile.py"
REPO = SCRIPT.parents[1]
NONCE = os.urandom(6).hex()
SECRET = f"s3cr3t-{NONCE}"
MODES = {"root": "root+bwrap", "non-root": "userns", "pod": "userns"}


@dataclass
class Host:
    """What the test watches on the host: a TCP and a UDP listener, the token file."""

    tcp: socket.socket
    udp: socket.socket

    @property
    def port(self) -> int:
        return int(self.tcp.getsockname()[1])

    def contacted(self) -> bool:
        with contextlib.suppress(BlockingIOError):
            self.tcp.accept()
            return True
        with contextlib.suppress(BlockingIOError):
            self.udp.recv(100)
            return True
        return False


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp.bind(("127.0.0.1", 0))
    udp.bind(("127.0.0.1", tcp.getsockname()[1]))
    tcp.listen(16)
    for s in (tcp, udp):
        s.setblocking(False)
    token = Path(TOKEN_FILE)
    planted = not token.exists()
    if planted:
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(f"token-{NONCE}")
        token.chmod(0o644)  # as the kubelet mounts it
    yield Host(tcp, udp)
    tcp.close()
    udp.close()
    if planted:
        shutil.rmtree(token.parent.parent.parent, ignore_errors=True)  # /run/secrets


@pytest.fixture(scope="module")
def stand_in() -> Iterator[Path]:
    """A directory every user can reach, for the /root stand-in and the unwritable working dir."""
    path = Path(tempfile.mkdtemp(prefix="adacot-modes-"))
    path.chmod(0o755)
    (path / "readonly").mkdir(mode=0o555)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_user(uid: int, stand_in: Path, pod: bool) -> list[str]:
    steps = ["mount --make-rprivate /", f"cd {stand_in / 'readonly'}"]  # before /tmp is covered
    real = Path(os.path.realpath(sys.executable))
    if real.parts[:2] == ("/", "root"):  # a 0711 stand-in for /root holding a bind of the tree
        tree, root = Path("/root", real.parts[2]), stand_in / "root"
        (root / tree.name).mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        steps += [f"mount --bind {tree} {root / tree.name}", f"mount --rbind {root} /root"]
    if pod:  # readOnlyRootFilesystem, an emptyDir on /tmp, the container runtime's 64 MiB /dev/shm
        steps += ["mount -o remount,bind,ro /", "mount -t tmpfs tmpfs /tmp"]
        steps += ["mount -t tmpfs -o size=64m tmpfs /dev/shm"]
    drop = f"setpriv --reuid {uid} --regid {uid} --clear-groups"
    if pod:  # allowPrivilegeEscalation: false; capabilities: drop: [ALL]
        drop += " --no-new-privs --inh-caps=-all --bounding-set=-all"
    steps.append(f"exec {drop} " + "{command}")
    return ["unshare", "--mount", "sh", "-c", " && ".join(steps)]


def run_mode(mode: str, host: Host, stand_in: Path) -> dict[str, object]:
    command = f"{sys.executable} {SCRIPT} {NONCE} {host.port}"
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", SECRET_ENV: SECRET, "PYTHONPATH": str(REPO)}
    if mode == "root":
        argv = ["sh", "-c", f"cd {stand_in / 'readonly'} && exec {command}"]
    else:
        argv = _as_user(10001 if mode == "pod" else 65534, stand_in, pod=mode == "pod")
        argv[-1] = argv[-1].replace("{command}", command)
        env["HOME"] = "/tmp" if mode == "pod" else "/nonexistent"
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _surviving() -> list[int]:
    """Host processes a program left: its nonce is in their command line or environment."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            data = Path(f"/proc/{entry}/cmdline").read_bytes() + Path(f"/proc/{entry}/environ").read_bytes()
            if NONCE.encode() in data and b"sandbox_hostile.py" not in data:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("mode", list(MODES))
def test_hostile_and_honest_programs_mixed_in_one_batch(mode: str, host: Host, stand_in: Path) -> None:
    found = run_mode(mode, host, stand_in)
    assert found["mode"] == MODES[mode], found  # the isolation this mode is meant to get
    verdicts = dict(found["verdicts"])  # type: ignore[call-overload]
    honest = {name: v for name, v in verdicts.items() if name.startswith("honest_")}
    attacks = {name: v for name, v in verdicts.items() if not name.startswith("honest_")}
    assert set(attacks) == set(hostile(NONCE, host.port, SECRET))
    assert [name for name, v in honest.items() if not v["correct"]] == [], honest
    assert [name for name, v in attacks.items() if v["correct"]] == [], attacks
    details = json.dumps(verdicts)  # "expected X, got Y": X is the secret, Y must not be
    assert f"got 'token-{NONCE}" not in details and f"got '{SECRET}" not in details
    assert [d for d in WRITE_TARGETS if Path(d, f"adacot-pwned-{NONCE}").exists()] == []
    assert not host.contacted()
    assert _surviving() == []
