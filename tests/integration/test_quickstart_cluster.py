"""docs/quickstart-cluster.md, run as written against the API emulator.

Every fenced shell block of the page carries a marker in the HTML comment above it: `quickstart-test: run`
or `quickstart-test: skip: <reason>`. The `run` blocks are executed in order by bash with the real
kubectl and helm (4.3) on PATH and KUBECONFIG pointing at the emulator, from the repository root; the
emulator's kubelet runs every Job (the page's prepare Job and the operator's stage Jobs) as a podman
container of ghcr.io/adacot/worker-cpu:<version> (tests/kube/kubelet_podman.py). The chart's operator
Deployment runs as a process with its own command and env once `helm install` has run (the emulator runs
no Deployments). Not run: the `skip` blocks (kind, k3d and docker cannot run here; GPUs and the hub are
absent). Checked without running: the markers themselves, that no skipped block hides a command this
test could run, and examples/quickstart/chain-hub.yaml against the CRDs and adacot's loader.

The end-to-end test is skipped only when podman or the worker-cpu image is missing (`make test` builds it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import helm_tools
import pytest
import yaml
from conftest import free_port
from crd_validation import validate_object
from kube.fixtures import KubeApi, stop
from kube.kubelet import LocalKubelet
from kube.kubelet_podman import IMAGES_ENV
from test_kubelet_podman import image_present

from adacot import __version__
from adacot.api.loader import load_resources
from adacot.artifacts import verify_artifact

layer_tools = helm_tools.layer_tools
helm_bin = helm_tools.helm_bin

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart-cluster.md"
QUICKSTART = ROOT / "examples" / "quickstart"
IMAGE = f"ghcr.io/adacot/worker-cpu:{__version__}"
RUN_IMAGE = json.loads(os.environ.get(IMAGES_ENV) or "{}").get(IMAGE, IMAGE)
"""What the kubelet runs for IMAGE: itself, unless $ADACOT_KUBELET_IMAGES maps it to another local image."""
NS = "adacot-quickstart"
MARKER = re.compile(r"<!-- quickstart-test: (run|skip: (.+?)) -->\n```(bash|sh)\n(.*?)```", re.S)
#: What a skipped block may hold: commands this test cannot run (cluster tools, image builds, GPU runs).
SKIPPABLE = (
    "make images",
    "kind ",
    "k3d ",
    "helm upgrade",
    "kubectl apply -f examples/quickstart/chain-hub.yaml",
    f"kubectl -n {NS} wait --for=condition=Complete sftjob/hub-sft",
)


def blocks() -> list[tuple[str, str]]:
    """(marker, commands) of each marked shell block, in page order; marker is "run" or the skip reason."""
    return [("run" if m[1] == "run" else m[2], m[4]) for m in MARKER.finditer(PAGE.read_text())]


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_every_shell_block_is_marked_and_only_untestable_ones_are_skipped() -> None:
    fenced = re.findall(r"```(?:bash|sh)\n", PAGE.read_text())
    found = blocks()
    assert len(found) == len(fenced), "a shell block of the page has no quickstart-test marker"
    assert [m for m, _ in found].count("run") >= 4
    for marker, block in found:
        if marker != "run":
            for command in commands(block):
                assert command.startswith(SKIPPABLE), f"skipped but runnable here: {command!r} ({marker})"


def test_the_hub_chain_is_accepted_by_the_loader_and_the_crds() -> None:
    for path in (QUICKSTART / "chain-hub.yaml", QUICKSTART / "chain.yaml"):
        kinds = [r.kind for r in load_resources(path)]
        assert kinds == ["GradingRun", "DifficultyBank", "DistillationJob", "SFTJob"], path
        for doc in yaml.safe_load_all(path.read_text()):
            assert validate_object(doc) == [], f"{path.name}: {doc['kind']}/{doc['metadata']['name']}"


KINDS = ("gradingruns", "difficultybanks", "distillationjobs", "sftjobs")


def failed_resources(api: KubeApi) -> list[str]:
    """`kind/name: message` of each adacot resource in the namespace whose Failed condition is True
    (none before the chart has installed the CRDs)."""
    try:
        objects = [o for kind in KINDS for o in api.objects(f"{kind}.adacot.dev", NS)]
    except KeyError:  # the emulator does not serve the kinds yet
        return []
    return [f"{o['kind']}/{o['metadata']['name']}: {c.get('message')}"
            for o in objects
            for c in (o.get("status") or {}).get("conditions") or []
            if c["type"] == "Failed" and c["status"] == "True"]  # fmt: skip


def run_block(block: str, env: dict[str, str], api: KubeApi) -> tuple[str, str | None]:
    """Run one block with bash; (stdout, None) when it succeeds, else (stdout, why). A resource that
    fails ends the block at once (its `kubectl wait --for=condition=Complete` would wait out its timeout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, stdout=out,
                                   stderr=err, text=True, start_new_session=True)  # fmt: skip
        failed: list[str] = []
        while process.poll() is None and not failed:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            failed = failed_resources(api) if process.poll() is None else []
        if failed:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if failed:
        return stdout, "failed resources: " + "; ".join(failed)
    return stdout, None if process.returncode == 0 else f"exit code {process.returncode}\n{stdout}{stderr}"


class ChartOperator:
    """The operator Deployment that `helm install` created, run as a process with its command and env."""

    def __init__(self, api: KubeApi, log: Path) -> None:
        self.api, self.log = api, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, kubectl: Path) -> None:
        listing = subprocess.run(
            [str(kubectl), "--kubeconfig", str(self.api.kubeconfig), "get", "deploy", "-A", "-o", "json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        [deployment] = json.loads(listing.stdout)["items"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        command = [f"--liveness=http://127.0.0.1:{free_port()}/healthz" if a.startswith("--liveness=") else a
                   for a in container["command"]]  # fmt: skip
        meta = deployment["metadata"]
        downward = {"metadata.namespace": meta["namespace"], "metadata.name": f"{meta['name']}-0"}
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        env |= {e["name"]: downward[e["valueFrom"]["fieldRef"]["fieldPath"]]
                for e in container.get("env") or [] if "fieldRef" in e.get("valueFrom", {})}  # fmt: skip
        env |= {"ADACOT_METRICS_PORT": str(free_port()), "KUBECONFIG": str(self.api.kubeconfig)}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name(command[0])), *command[1:]],
                env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture
def cluster(kube_api: KubeApi, tmp_path: Path) -> Iterator[tuple[KubeApi, LocalKubelet, ChartOperator]]:
    operator = ChartOperator(kube_api, tmp_path / "operator.log")
    with LocalKubelet(kube_api.kubeconfig, tmp_path / "node", runtime="podman", grace_s=5) as kubelet:
        try:
            yield kube_api, kubelet, operator
        finally:
            operator.stop()


@pytest.mark.skipif(not image_present(RUN_IMAGE), reason=f"podman or the image {RUN_IMAGE} is missing")
def test_the_quickstart_runs_as_written(
    cluster: tuple[KubeApi, LocalKubelet, ChartOperator], helm_bin: Path, tmp_path: Path
) -> None:
    api, kubelet, operator = cluster
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "helm").symlink_to(helm_bin)
    (tools / "kubectl").symlink_to("/usr/bin/kubectl")
    helm_home = {"HELM_CACHE_HOME": str(tmp_path / "helm-cache"), "HELM_CONFIG_HOME": str(tmp_path / "helm")}
    env = {
        **os.environ,
        **helm_home,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "KUBECONFIG": str(api.kubeconfig),
    }
    outputs = []
    for marker, block in blocks():
        if marker != "run":
            continue
        stdout, failure = run_block(block, env, api)
        if failure:
            pods = "\n".join(f"--- {name}\n{kubelet.log_of(name)[-3000:]}" for name in list(kubelet.pods))
            operator_log = operator.log.read_text()[-4000:] if operator.log.exists() else ""
            pytest.fail(f"block failed:\n{block}\n{failure}\npods:\n{pods}\noperator:\n{operator_log}")
        outputs.append(stdout)
        if "helm install" in block:
            operator.start(tools / "kubectl")

    table = next(out for out in outputs if "sftjob.adacot.dev/sft" in out)
    phases = {line.split()[0]: line.split()[1] for line in table.splitlines() if ".adacot.dev/" in line}
    expected = {"gradingrun.adacot.dev/pool": "Succeeded", "difficultybank.adacot.dev/bank": "Ready",
                "distillationjob.adacot.dev/distil": "Succeeded",
                "sftjob.adacot.dev/sft": "Succeeded"}  # fmt: skip
    assert phases == expected, table
    output = json.loads(outputs[-1])  # the page's last block prints the SFTJob's status.output
    verify_artifact(tmp_path / "node" / "pvc" / output["claim"] / output["path"])
    assert kubelet.pods and all(run.phase == "Succeeded" for run in kubelet.pods.values())
    for run in kubelet.pods.values():  # the prepare Job and every stage ran as a worker-cpu container
        assert run.sandbox is not None
        assert RUN_IMAGE in json.loads((run.sandbox.root / "podman-argv.json").read_text())
    assert (tmp_path / "node" / "pvc" / "quickstart" / "models" / "student" / "model.safetensors").is_file()
