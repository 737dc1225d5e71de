"""A run's private working directory and the environment it starts with, both built from scratch.

Called by adacot.verify.sandbox.slots (per run) and adacot.verify.sandbox.isolation (the probe). The
workdir is mode 0700 (chowned to the slot's uid when privileges are dropped) inside a base that is
traversable but not listable; the environment carries nothing of the caller's. Limits: the base lives
in /dev/shm when that is large, so what a program writes costs memory until the run ends (bounded per
file by RLIMIT_FSIZE, not in total); see adacot.verify.sandbox on world-writable paths.
"""

from __future__ import annotations

import contextlib
import os
import shutil

from adacot.verify.sandbox.stragglers import MARKER

_SHM = "/dev/shm"
_SHM_MIN_FREE = 4 << 30


def workdir_root() -> str | None:
    """/dev/shm when it is a writable tmpfs with room, else the default temporary directory.

    Creating, filling and removing a workdir costs ~0.1 ms in memory against ~5 ms on a disk file
    system (ext4 mounted with `discard`, as on our CI machine). What a program writes there is held
    in memory until the run ends: bounded per file by RLIMIT_FSIZE, not in total (see
    adacot.verify.sandbox on world-writable paths). Small /dev/shm mounts (Docker's 64 MiB) are not used."""
    try:
        found = os.statvfs(_SHM)
    except OSError:
        return None
    roomy = found.f_bavail * found.f_frsize >= _SHM_MIN_FREE
    return _SHM if roomy and os.access(_SHM, os.W_OK | os.X_OK) else None


def populate(workdir: str, files: dict[str, bytes], uid: int | None) -> None:
    for name, data in files.items():
        path = os.path.join(workdir, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o644)
    if uid is not None:
        os.chown(workdir, uid, uid)


def remove_tree(path: str) -> None:
    # A program may chmod its own directories to 000; make them writable before removing.
    def fix(func: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            (os.rmdir if os.path.isdir(failed) else os.unlink)(failed)

    shutil.rmtree(path, onerror=fix)


def base_env(workdir: str, token: str) -> dict[str, str]:
    """A run's whole environment: a fixed PYTHONHASHSEED (two runs of the same program order sets
    alike), HOME/TMPDIR = its workdir, and its marker (adacot.verify.sandbox.stragglers)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        MARKER: token,
    }
