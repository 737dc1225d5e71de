"""The bubblewrap command as data: what the jail shares, hides and unshares, and the mode names."""

from __future__ import annotations

from adacot.verify.sandbox import Isolation
from adacot.verify.sandbox.jail import jail_command, jailed


def _pairs(command: tuple[str, ...] | list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, item in enumerate(command) if item == flag]


def test_the_jail_is_read_only_with_private_scratch_and_secret_dirs() -> None:
    command = jail_command("/usr/bin/bwrap", userns=False)
    assert _pairs(command, "--ro-bind")[:1] == ["/"]
    assert {"/tmp", "/dev/shm", "/run"} <= set(_pairs(command, "--tmpfs"))  # /run/secrets: tokens
    assert {"--unshare-net", "--unshare-ipc", "--die-with-parent"} <= set(command)
    assert "--unshare-user" not in command  # root keeps its uids for the per-slot drop
    assert "--unshare-pid" not in command  # the fork server's pids must be the caller's


def test_not_root_the_jail_is_a_user_namespace_mapped_to_root() -> None:
    command = jail_command("/usr/bin/bwrap", userns=True)
    assert "--unshare-user" in command and _pairs(command, "--uid") == ["0"]


def test_only_the_base_is_writable_and_the_command_comes_last() -> None:
    jail = jail_command("bwrap", userns=True)
    command = jailed(jail, "/dev/shm/base", "/dev/shm/base/run1", ["python", "x.py"])
    assert _pairs(command, "--bind") == ["/dev/shm/base"]
    assert command[-3:] == ["--", "python", "x.py"] and _pairs(command, "--chdir") == ["/dev/shm/base/run1"]
    assert jailed((), "/b", "/b", ["python"]) == ["python"]  # no jail: the command as it is


def test_modes_are_named_as_in_the_security_table() -> None:
    jail = ("bwrap",)
    assert Isolation(True, True, True, jail=jail).mode == "root+bwrap"
    assert Isolation(True, True, False, jail=jail, userns=True).mode == "userns"
    assert Isolation(True, True, True).mode == "root"
    assert Isolation(False, False, False).mode == "none"
