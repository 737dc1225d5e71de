"""The code sandbox as a non-root worker (the worker images run as uid 10001): a program cannot read
the verifying process's secret env vars through /proc/PID/environ (`shield_caller`).

The verifier runs in a child process started as uid/gid 65534 with the secret in its initial
environment block, which is what /proc/PID/environ shows and what a pod's secretKeyRef env var is. This
machine's interpreter lies under /root (mode 0700), so the child gets a private mount namespace in
which /root is a traversable directory holding only the interpreter tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
        reason="needs root, unshare and setpriv to start a non-root verifier",
    ),
]

SECRET = "s3cr3t-" + os.urandom(6).hex()
NOBODY = 65534

VERIFY = textwrap.dedent(
    """
    import json, os
    from adacot.verify.code import CodeVerifier
    from adacot.verify.sandbox import SandboxLimits

    steal = (
        "import glob\\n"
        "def f(x):\\n"
        "    for path in glob.glob('/proc/*/environ'):\\n"
        "        try:\\n"
        "            data = open(path, 'rb').read()\\n"
        "        except OSError:\\n"
        "            continue\\n"
        "        for item in data.split(b'\\\\0'):\\n"
        "            if item.startswith(b'ADACOT_SECRET_TEAM_KEY='):\\n"
        "                return item.split(b'=', 1)[1].decode()\\n"
        "    return ''\\n"
    )
    secret = os.environ["ADACOT_SECRET_TEAM_KEY"]
    limits = SandboxLimits(
        wall_seconds=20, test_seconds=3, memory_bytes=512 << 20, max_processes=24, namespaces=NAMESPACES
    )
    with CodeVerifier(workers=1, limits=limits) as verifier:
        plus_one = verifier.verify(
            "def f(x):\\n    return x + 1\\n", {"entry_point": "f", "inputs": [[1]], "outputs": [2]}
        )
        stolen = verifier.verify(steal, {"entry_point": "f", "inputs": [[1]], "outputs": [secret]})
        isolation = verifier.sandbox.isolation
    print(json.dumps({
        "uid": os.geteuid(),
        "drop_privileges": isolation.drop_privileges,
        "plus_one": plus_one.correct,
        "stolen": stolen.correct,
        "detail": stolen.detail,
    }))
    """
)


def _interpreter_root() -> Path | None:
    """The directory under /root that holds the interpreter, if it lies there."""
    real = Path(os.path.realpath(sys.executable))
    if real.parts[:2] != ("/", "root"):
        return None
    return Path("/root", real.parts[2])


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory uid 65534 can reach (pytest's tmp_path lies below a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="adacot-nonroot-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_as_nobody(tmp_path: Path, code: str) -> dict[str, object]:
    script = tmp_path / "verify_as_nobody.py"
    script.write_text(code)
    steps = []
    tree = _interpreter_root()
    if tree is not None:  # a 0711 stand-in for /root holding a bind of the interpreter's tree
        stand_in = tmp_path / "root"
        (stand_in / tree.name).mkdir(parents=True, exist_ok=True)
        os.chmod(stand_in, 0o711)
        steps += [f"mount --bind {tree} {stand_in / tree.name}", f"mount --rbind {stand_in} /root"]
    drop = f"setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups"
    steps.append(f"exec {drop} {sys.executable} {script}")
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "ADACOT_SECRET_TEAM_KEY": SECRET}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(steps)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("namespaces", [True, False])
def test_a_program_cannot_read_the_non_root_verifiers_secret_env(shared_dir: Path, namespaces: bool) -> None:
    """With the jail (its own /proc) and without it (`none` mode: the shield alone)."""
    found = _run_as_nobody(shared_dir, VERIFY.replace("NAMESPACES", str(namespaces)))
    assert found["uid"] == NOBODY and found["drop_privileges"] is False  # the non-root mode
    assert found["plus_one"] is True  # the sandbox works as that user
    assert found["stolen"] is False and "got ''" in str(found["detail"])


def test_without_the_shield_the_same_program_reads_it(shared_dir: Path) -> None:
    """The attack is real: in the `none` mode, with shield_caller made a no-op the secret comes back
    (guards the test above against passing because the program could not read /proc at all)."""
    unshielded = VERIFY.replace("NAMESPACES", "False").replace(
        "from adacot.verify.code import CodeVerifier",
        "import adacot.verify.sandbox.slots as sandbox\n"
        "sandbox.shield_caller = lambda isolation: None\n"
        "from adacot.verify.code import CodeVerifier",
    )
    found = _run_as_nobody(shared_dir, unshielded)
    assert found["uid"] == NOBODY and found["plus_one"] is True
    assert found["stolen"] is True
