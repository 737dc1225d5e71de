"""Multi-node SFT as a gang, end to end: an SFTJob with `nodes: 2` on the API emulator, the operator as
a real `kopf run`, the local kubelet running both pods of its Indexed Job (each its own PID namespace
and loopback IP; node 0's `<job>-0.<job>` name resolved through the headless Service), real torchrun
(static rendezvous across the two pods) and DeepSpeed ZeRO-2 on CPU (gloo).

Once the first checkpoint is complete, node 1's pod is SIGKILLed mid-training. What must follow: the
Job fails at once (backoffLimit 0: a rank recreated alone would wait forever in the rendezvous), the
operator replaces the whole Job (both nodes start again, new pods), records the gang restart in
status (restarts 1, the failing node, its pod and exit code), training resumes from the checkpoint and
the SFTJob succeeds with the full step count. A second test: with no restart budget, the same kill
fails the SFTJob with the failing node named.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from adacot_operator.names import child_name
from kube.kubelet import LocalKubelet
from operator_e2e_helpers import Kubectl, Operator, claim, doc, dump
from sft_helpers import FAST, sft_examples, write_dataset
from shared_data import needs_shared_data

from adacot.pipelines.sft_job import read_summary

pytestmark = [pytest.mark.integration, needs_shared_data]
REPO = Path(__file__).resolve().parents[2]
MANAGED = "app.kubernetes.io/managed-by=adacot"
OFFLINE_ENV = (
    '[{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TOKENIZERS_PARALLELISM", "value": "false"},'
    ' {"name": "OMP_NUM_THREADS", "value": "1"}]'
)
#: 24 examples unpacked, 2 per device, 2 ranks: 6 optimizer steps an epoch, 24 in all; a checkpoint
#: every 2, so the kill after the first one lands with most of the training still to do.
EXAMPLES, EPOCHS, SAVE_STEPS = 24, 4, 2
TOTAL_STEPS = EXAMPLES // (2 * FAST["perDeviceBatchSize"]) * EPOCHS


@pytest.fixture
def gang(
    kube_api: Any, tmp_path: Path, tiny_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Kubectl, Path, LocalKubelet]]:
    """CRDs, the `models` claim holding the tiny model, two pod slots on the local kubelet, the operator."""
    kubectl = Kubectl(kube_api)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(claim("models")))
    volume_root = tmp_path / "node"
    shutil.copytree(tiny_lm, volume_root / "pvc" / "models" / "tiny")
    write_dataset(tmp_path / "train.jsonl", sft_examples(EXAMPLES))
    monkeypatch.setenv("ADACOT_WORKER_EXTRA_ENV", OFFLINE_ENV)
    operator = Operator(Path(kube_api.kubeconfig), tmp_path / "operator.log")
    with LocalKubelet(
        kube_api.kubeconfig, volume_root, max_running=2, label_selector=MANAGED, grace_s=5
    ) as kubelet:
        operator.start()
        try:
            yield kubectl, tmp_path, kubelet
        finally:
            operator.stop()


def sft_job(dataset: Path, restarts: int) -> dict[str, Any]:
    training = {**FAST, "epochs": EPOCHS, "saveSteps": SAVE_STEPS, "saveTotalLimit": 2, "packing": False}
    return doc("SFTJob", "gang", {
        "dataset": {"path": str(dataset)}, "model": {"path": "tiny", "claimName": "models"},
        "training": training, "deepspeed": {"stage": 2}, "nodes": 2,
        "resources": {"gpus": 0}, "backoffLimit": restarts,
    })  # fmt: skip


def wait_for(what: str, check: Any, timeout_s: float = 600) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def complete_checkpoints(out: Path) -> list[int]:
    """Steps of the checkpoints whose trainer_state.json is written (the Trainer writes it last)."""
    return sorted(
        int(p.parent.name.rsplit("-", 1)[1]) for p in out.glob("checkpoints/checkpoint-*/trainer_state.json")
    )


def output_dir(kubectl: Kubectl, volume_root: Path) -> Path:
    output = wait_for("status.output", lambda: kubectl.get("sftjob", "gang").get("status", {}).get("output"))
    return volume_root / "pvc" / output["claim"] / output["path"]


def kill_node_1_after_a_checkpoint(
    kubectl: Kubectl, tmp_path: Path, kubelet: LocalKubelet
) -> tuple[str, int]:
    """SIGKILL node 1's pod (all of it: its PID namespace goes) once a checkpoint is complete and
    training is still going; returns the killed pod's name and the newest complete checkpoint."""
    out = output_dir(kubectl, tmp_path / "node")
    job = child_name("SFTJob", "gang")
    wait_for("a complete checkpoint", lambda: complete_checkpoints(out))
    (node1,) = [r for r in kubelet.pods_of(job) if r.index == 1 and r.active]
    assert node1.process is not None and node1.process.poll() is None, "node 1 finished before the kill"
    assert not (out / "train_result.json").exists(), "training finished before the kill"
    os.killpg(node1.process.pid, signal.SIGKILL)
    return node1.name, complete_checkpoints(out)[-1]


def test_a_killed_rank_restarts_the_whole_gang_from_the_last_checkpoint(
    gang: tuple[Kubectl, Path, LocalKubelet],
) -> None:
    kubectl, tmp_path, kubelet = gang
    job = child_name("SFTJob", "gang")
    kubectl("apply", "-f", str(dump([sft_job(tmp_path / "train.jsonl", restarts=2)], tmp_path / "sft.yaml")))
    killed, checkpoint = kill_node_1_after_a_checkpoint(kubectl, tmp_path, kubelet)
    first_pods = {r.name for r in kubelet.pods_of(job)}

    kubectl.wait("sftjob/gang", "condition=Complete", 900)
    status = kubectl.get("sftjob", "gang")["status"]
    assert status["restarts"] == 1
    reason = status["lastRestartReason"]
    assert reason.startswith(f"node 1 (pod {killed}) exited with code 137"), reason
    runs = kubelet.pods_of(job)
    second = [r for r in runs if r.name not in first_pods]
    assert sorted(r.index for r in second) == [0, 1]  # both nodes started again, as new pods
    assert all(r.phase == "Succeeded" for r in second)

    out = output_dir(kubectl, tmp_path / "node")
    summary = read_summary(out)
    assert summary["world_size"] == 2 and summary["deepspeed_stage"] == 2
    assert summary["global_step"] == TOTAL_STEPS
    assert summary["resumed_at_step"] is not None and summary["resumed_at_step"] >= checkpoint
    events = json.loads(kubectl("get", "events", "--field-selector", "reason=GangRestart", "-o", "json"))
    assert [(e["involvedObject"]["name"], e["type"]) for e in events["items"]] == [("gang", "Warning")]


def test_without_a_restart_budget_the_killed_rank_fails_the_job(
    gang: tuple[Kubectl, Path, LocalKubelet],
) -> None:
    kubectl, tmp_path, kubelet = gang
    kubectl("apply", "-f", str(dump([sft_job(tmp_path / "train.jsonl", restarts=0)], tmp_path / "sft.yaml")))
    killed, _ = kill_node_1_after_a_checkpoint(kubectl, tmp_path, kubelet)

    kubectl.wait("sftjob/gang", "condition=Failed", 300)
    status = kubectl.get("sftjob", "gang")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and killed in failed["message"]
    assert status.get("restarts") is None
    assert len(kubelet.pods_of(child_name("SFTJob", "gang"))) == 2  # nothing was started again
