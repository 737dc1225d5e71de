"""The pod entry point `adacot stage gradingrun`, run as a real process on the session's tiny model with
vLLM's default layout (engine core in its own process, adacot's default), SIGKILLed mid-generation:
no engine process and no shared-memory segment of the stage's process tree is left behind
(adacot.backends.vllm_guard)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import KV_CACHE_BYTES, MATH500

from adacot.backends.vllm import IN_PROCESS_ENV

pytestmark = pytest.mark.integration
START_DEADLINE_S = 300  # engine start on a loaded 2-CPU machine
CLEANUP_DEADLINE_S = 60  # the guard's poll, vLLM's shutdown grace, the guard's own grace


def children_map() -> dict[int, list[int]]:
    """Every live process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    tree, found, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live, non-zombie process: a reused pid is not the same process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else (pid, fields[19])


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def shm_segments(pid: int) -> set[str]:
    """Names of the /dev/shm files the process maps or holds open (not yet unlinked)."""
    paths: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            path = line.split(maxsplit=5)[5] if len(line.split(maxsplit=5)) == 6 else ""
            paths.add(path)
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                paths.add(os.readlink(fd))
    return {Path(p).name for p in paths if p.startswith("/dev/shm/") and not p.endswith("(deleted)")}


def grading_spec(tmp_path: Path, model: Path) -> Path:
    rows = [json.loads(line) for line in MATH500.read_text().splitlines()[:200]]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": f"m{i}", **r}) + "\n" for i, r in enumerate(rows)))
    spec = {
        "questions": {"path": str(questions), "fields": {"id": "id"}},
        "model": {"path": str(model), "maxModelLen": 1024},
        "inference": {"engine": "vllm", "batchSize": 2,
                      "vllm": {"extraArgs": ["--kv-cache-memory-bytes", KV_CACHE_BYTES]}},
        "sampling": {"samplesPerQuestion": 2, "maxTokens": 512, "seed": 0},
        "grader": {"method": "passRate"},
        "verification": {"workers": 1},
    }  # fmt: skip
    path = tmp_path / "grading.yaml"
    resource = {"apiVersion": "adacot.dev/v1alpha1", "kind": "GradingRun", "metadata": {"name": "orphans"}}
    path.write_text(yaml.safe_dump(resource | {"spec": spec}))
    return path


def test_sigkill_of_the_stage_leaves_no_engine_process_or_shared_memory(
    tmp_path: Path, tiny_lm: Path
) -> None:
    spec, out = grading_spec(tmp_path, tiny_lm), tmp_path / "out"
    log = tmp_path / "stage.log"
    env = {k: v for k, v in os.environ.items() if k != IN_PROCESS_ENV}  # adacot's default layout
    command = [str(Path(sys.executable).parent / "adacot"), "stage", "gradingrun", "--spec", str(spec),
               "--out", str(out)]  # fmt: skip
    with log.open("wb") as sink:
        stage = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    tree: list[tuple[int, str]] = []
    try:
        phase1 = out / "_work" / "graded"
        began = time.monotonic()
        # Mid-generation: the first chunk's records are written and the stage is still generating.
        while not any(shard_log.read_text().count("\n") >= 1 for shard_log in phase1.glob("log-*.jsonl")):
            assert stage.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - began < START_DEADLINE_S, log.read_text()[-3000:]
            time.sleep(0.2)
        tree = [i for i in map(identity, descendants(stage.pid)) if i is not None]
        engines = [pid for pid, _ in tree if "EngineCore" in cmdline(pid)]
        segments = set().union(*(shm_segments(pid) for pid in [stage.pid, *(p for p, _ in tree)]))
        assert stage.poll() is None, "the stage finished before it could be killed mid-generation"
        assert engines, f"no engine core process among the stage's: {[cmdline(p) for p, _ in tree]}"
        assert segments, "the stage's processes map no /dev/shm segment; nothing to check"

        stage.send_signal(signal.SIGKILL)
        stage.wait()
        deadline = time.monotonic() + CLEANUP_DEADLINE_S
        left = tree
        present = segments
        while time.monotonic() < deadline:
            left = [i for i in tree if identity(i[0]) == i]
            present = {s for s in segments if (Path("/dev/shm") / s).exists()}
            if not left and not present:
                break
            time.sleep(0.5)
        assert not left, f"processes outlived the stage: {[cmdline(p) for p, _ in left]}"
        assert not present, f"shared-memory segments left behind: {sorted(present)}"
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
        for pid, started in tree:  # never leave a failed test's processes on the machine
            if identity(pid) == (pid, started):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
