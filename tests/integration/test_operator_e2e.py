"""The operator end to end: real kubectl against the API emulator, the operator as a real `kopf run`
process, the stages' Jobs run by the local kubelet (tests/kube/kubelet.py) as `adacot stage` processes.

- the chain (GradingRun in two Indexed shards -> DifficultyBank -> DistillationJob -> SFTJob) on the
  session's tiny model, applied with one `kubectl apply -f distill.yaml`, its SFTJob suspended until
  the distillation is done and then resumed, the operator SIGKILLed and restarted once the first Job
  exists: every stage Complete (`kubectl wait`), one Job per stage and one pod per shard, phases and
  progress in `kubectl get adacot` (the pods write nothing to the API), artifacts where
  status.output says with the sha256 it reports; a forged status.output (another claim and path,
  patched in while the operator is down) put back to the spec's location and mounted by no Job;
- the same chain under two operator replicas electing a leader on a Lease: the leader SIGKILLed while
  the DistillationJob's pod is mid-run (its teacher requests held by a proxy), the follower takes the
  Lease and completes the chain; each child created once (the emulator's request log), the
  distillation finished in the Job and pod it had started in;
- a GradingRun held mid-stage by a server that stalls on one question: the operator SIGKILLed and
  restarted (same Job, same process), then suspend (Job deleted, process killed) and resume (a new
  pod grades only the questions not yet logged, each question once in the artifact);
- a stage whose model path does not exist: Failed with the stage's own error as the reason's message,
  its bank Failed because of it;
- invalid resources rejected by kubectl with the field named.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from adacot_operator.names import child_name
from conftest import VllmServer, process_wait
from fault_server import FaultServer
from kube.kubelet import LocalKubelet
from operator_e2e_helpers import (
    GatedProxy,
    Kubectl,
    Operator,
    chain,
    claim,
    condition,
    doc,
    dump,
    fill_claims,
    grading_spec,
)
from shared_data import needs_shared_data
from test_runner import TEACHER_SAMPLING, math500, pool_with_a_solvable_question, question

from adacot.api.generation import PromptSpec
from adacot.artifacts import GradedQuestion, read_records, verify_artifact
from adacot.pipelines.sft_job import read_summary
from adacot.stages.prompts import user_text

pytestmark = [pytest.mark.integration, needs_shared_data]
REPO = Path(__file__).resolve().parents[2]
MANAGED = "app.kubernetes.io/managed-by=adacot"
KINDS = {"pool": "GradingRun", "bank": "DifficultyBank", "distil": "DistillationJob", "sft": "SFTJob"}
OFFLINE_ENV = (
    '[{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TOKENIZERS_PARALLELISM", "value": "false"}]'
)


@pytest.fixture
def cluster(kube_api: Any, tmp_path: Path) -> Iterator[tuple[Kubectl, Path, LocalKubelet]]:
    """CRDs applied, the `models` and `datasets` claims, and the local kubelet on adacot's Jobs."""
    kubectl = Kubectl(kube_api)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([claim("models"), claim("datasets")]))
    volume_root = tmp_path / "node"
    with LocalKubelet(kube_api.kubeconfig, volume_root, label_selector=MANAGED, grace_s=5) as kubelet:
        yield kubectl, volume_root, kubelet


@pytest.fixture
def operator(kube_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Operator]:
    monkeypatch.setenv("ADACOT_WORKER_EXTRA_ENV", OFFLINE_ENV)
    running = Operator(Path(kube_api.kubeconfig), tmp_path / "operator.log")
    running.start()
    yield running
    running.stop()


def test_invalid_resources_are_rejected_by_kubectl(cluster: tuple[Kubectl, Path, LocalKubelet]) -> None:
    kubectl, _, _ = cluster
    for sample in sorted((REPO / "crds" / "samples" / "invalid").glob("*.yaml")):
        result = kubectl.run("apply", "-f", str(sample), check=False)
        assert result.returncode != 0, f"{sample.name} was accepted"
        expected = sample.read_text().splitlines()[0].removeprefix("# expect: ")
        assert expected in result.stderr, (sample.name, result.stderr)
    assert [
        kubectl.items(plural) for plural in ("gradingruns", "difficultybanks", "distillationjobs", "sftjobs")
    ] == [[], [], [], []]


def test_the_chain_runs_to_complete_through_a_suspend_and_an_operator_restart(
    kube_api: Any,
    cluster: tuple[Kubectl, Path, LocalKubelet],
    operator: Operator,
    tiny_lm: Path,
    vllm_server: VllmServer,
    tmp_path: Path,
) -> None:
    kubectl, volume_root, kubelet = cluster
    rows, stop, special = pool_with_a_solvable_question(vllm_server)
    fill_claims(volume_root, tiny_lm, rows)
    sampling = {**TEACHER_SAMPLING.model_dump(by_alias=True), "stop": [stop]}
    kubectl(
        "apply",
        "-f",
        str(dump(chain(vllm_server.url, sampling, suspend_sft=True), tmp_path / "distill.yaml")),
    )

    first_job = child_name("GradingRun", "pool")
    kubectl.wait(f"job/{first_job}", "create", 120)
    uid = kubectl.get("job", first_job)["metadata"]["uid"]
    operator.kill()  # mid-run: the grading Job exists and runs (or waits for the kubelet)
    # A compromised pod (or anyone with status access) points the pool's output at other data; the
    # operator puts back what the spec says, and nothing downstream reads the forged location.
    forged = {"status": {"output": {"claim": "datasets", "path": "attacker/poisoned", "sha256": "0" * 64}}}
    kubectl("patch", "gradingrun", "pool", "--subresource=status", "--type=merge", "-p", json.dumps(forged))
    assert kubectl.get("gradingrun", "pool")["status"]["output"]["path"] == "attacker/poisoned"
    operator.start()
    namespace = kubectl.get("gradingrun", "pool")["metadata"]["namespace"]
    kubectl.wait("gradingrun/pool", f"jsonpath={{.status.output.path}}={namespace}/GradingRun/pool", 120)

    try:
        kubectl.wait("distillationjob/distil", "condition=Complete", 600)
        kubectl.wait("sftjob/sft", "jsonpath={.status.phase}=Suspended", 120)
        sft_job = kubectl.run("get", "job", child_name("SFTJob", "sft"), "-o", "json", check=False)
        assert sft_job.returncode != 0 or '"suspend": true' in sft_job.stdout
        assert kubelet.pods_of(child_name("SFTJob", "sft")) == []  # nothing ran while suspended
        kubectl("patch", "sftjob", "sft", "--type=merge", "-p", '{"spec": {"suspend": false}}')
        kubectl.wait("sftjob/sft", "condition=Complete", 600)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log (tail):\n{operator.tail(30)}") from None

    table = kubectl("get", "adacot")
    listed = {line.split()[0]: line.split()[1:3] for line in table.splitlines() if "adacot.dev/" in line}
    phases = {kind: "Ready" if kind == "DifficultyBank" else "Succeeded" for kind in KINDS.values()}
    assert listed == {f"{k.lower()}.adacot.dev/{n}": [phases[k], "100"] for n, k in KINDS.items()}, table
    assert "Traceback" not in operator.log.read_text()
    jobs = kubectl.items("jobs", "-l", MANAGED)
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(child_name(k, n) for n, k in KINDS.items())
    assert kubectl.get("job", first_job)["metadata"]["uid"] == uid  # the restart adopted, not recreated
    for job in jobs:  # each stage ran once: one pod per shard (the pool has two), all succeeded
        shards = 2 if job["metadata"]["name"] == first_job else 1
        assert job["status"]["succeeded"] == shards and job["status"].get("failed", 0) == 0
        assert [run.phase for run in kubelet.pods_of(job["metadata"]["name"])] == ["Succeeded"] * shards
    assert kubectl.get("job", first_job)["status"]["completedIndexes"] == "0-1"

    for name, kind in KINDS.items():
        status = kubectl.get(kind.lower(), name)["status"]
        output = status["output"]
        artifact = volume_root / "pvc" / output["claim"] / output["path"]
        verify_artifact(artifact)
        assert hashlib.sha256((artifact / "MANIFEST.json").read_bytes()).hexdigest() == output["sha256"]
        assert status["progress"]["percent"] == 100, (kind, status["progress"])
        if kind == "SFTJob":  # training steps: read from the trainer's endpoint, or the summary at the end
            steps = read_summary(artifact)["global_step"]
            assert steps > 1 and status["progress"]["total"] == status["progress"]["done"] == steps
    worker_patches = {(r["resource"], r["name"]) for r in kube_api.requests()
                      if r["verb"] == "patch" and r["subresource"] == "status" and r["code"] == 200
                      and r["user_agent"].startswith("Python-urllib")}  # fmt: skip
    assert worker_patches == set()  # stage pods write nothing to the API: the operator reads their progress
    assert "attacker/poisoned" not in json.dumps(jobs)  # no consumer mounted the forged location
    kept = (volume_root / "pvc").rglob("DistillationJob/distil/data/*")
    assert any(special in path.read_text(errors="ignore") for path in kept if path.is_file())


def test_the_leader_killed_mid_chain_the_follower_completes_it_without_duplicate_children(
    kube_api: Any,
    cluster: tuple[Kubectl, Path, LocalKubelet],
    tiny_lm: Path,
    vllm_server: VllmServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two replicas electing a leader on a 4 s Lease run the chain; the leader is SIGKILLed while the
    DistillationJob's pod is mid-run (its teacher requests held by a proxy until the follower leads):
    the follower takes the Lease and completes the chain; every child was created once (the emulator's
    request log), and the distillation finished in the Job and pod that were running at the kill."""
    kubectl, volume_root, kubelet = cluster
    rows, stop, _ = pool_with_a_solvable_question(vllm_server)
    fill_claims(volume_root, tiny_lm, rows)
    monkeypatch.setenv("ADACOT_WORKER_EXTRA_ENV", OFFLINE_ENV)
    monkeypatch.setenv("ADACOT_LEADER_ELECTION_NAMESPACE", "default")
    monkeypatch.setenv("ADACOT_LEADER_LEASE_SECONDS", "4")
    replicas = [Operator(Path(kube_api.kubeconfig), tmp_path / f"operator-{n}.log") for n in "ab"]
    gate = GatedProxy(vllm_server.url)
    with gate:
        try:
            for replica in replicas:
                replica.start()
            kubectl.wait("lease/adacot-operator", "create", 60)
            docs = chain(
                vllm_server.url, {**TEACHER_SAMPLING.model_dump(by_alias=True), "stop": [stop]}, False
            )
            docs[2]["spec"]["teacher"]["endpoint"]["url"] = gate.url  # the DistillationJob waits at the gate
            kubectl("apply", "-f", str(dump(docs, tmp_path / "distill.yaml")))
            distil_job = child_name("DistillationJob", "distil")
            deadline = time.monotonic() + 600  # a guard against a hang, not a timing assertion
            while not gate.arrived.wait(1):  # the distillation's pod asked the teacher: mid-stage
                upstream = kubectl("get", "gradingrun/pool", "difficultybank/bank", "distillationjob/distil")
                assert "Failed" not in upstream and time.monotonic() < deadline, upstream
            (run,) = kubelet.pods_of(distil_job)
            uid = kubectl.get("job", distil_job)["metadata"]["uid"]
            assert run.process is not None and run.process.poll() is None

            lease = kubectl.get("lease", "adacot-operator")["spec"]
            ids = {f"{socket.gethostname()}-{r.process.pid}": r for r in replicas}  # type: ignore[union-attr]
            leader = ids[lease["holderIdentity"]]
            ((follower_id, follower),) = ((i, r) for i, r in ids.items() if r is not leader)
            leader.kill()
            kubectl.wait("lease/adacot-operator", f"jsonpath={{.spec.holderIdentity}}={follower_id}", 60)
            taken = kubectl.get("lease", "adacot-operator")["spec"]
            assert taken["leaseTransitions"] == lease.get("leaseTransitions", 0) + 1
            assert run.process.poll() is None  # the takeover left the running stage alone
            gate.open()
            kubectl.wait("distillationjob/distil", "condition=Complete", 600)
            kubectl.wait("sftjob/sft", "condition=Complete", 600)
        except AssertionError as error:
            logs = "\n".join(f"{r.log.name} (tail):\n{r.tail(30)}" for r in replicas)
            raise AssertionError(f"{error}\n{logs}") from None
        finally:
            for replica in replicas:
                replica.stop()

    table = kubectl("get", "adacot")
    listed = {line.split()[0]: line.split()[1:3] for line in table.splitlines() if "adacot.dev/" in line}
    phases = {kind: "Ready" if kind == "DifficultyBank" else "Succeeded" for kind in KINDS.values()}
    assert listed == {f"{k.lower()}.adacot.dev/{n}": [phases[k], "100"] for n, k in KINDS.items()}, table
    assert "leads" in follower.log.read_text() and "Traceback" not in follower.log.read_text()
    # No duplicate children: as many successful creates (the emulator's request log; a create names no
    # object there) as children exist now, none deleted, so each child was created once.
    children = ("jobs", "configmaps", "persistentvolumeclaims", "services")
    owned = {
        kind: sorted(o["metadata"]["name"] for o in kubectl.items(kind, "-l", MANAGED)) for kind in children
    }
    assert owned["jobs"] == sorted(child_name(k, n) for n, k in KINDS.items())
    assert len(owned["configmaps"]) == len(owned["persistentvolumeclaims"]) == len(KINDS), owned
    writes = [r for r in kube_api.requests() if r["resource"] in children and r["code"] < 300
              and not r["user_agent"].startswith("kubectl/")]  # fmt: skip
    created = Counter(r["resource"] for r in writes if r["verb"] == "create")
    assert created == Counter({kind: len(names) for kind, names in owned.items() if names}), (created, owned)
    assert [r for r in writes if r["verb"] in ("delete", "deletecollection")] == []
    # The killed leader's work was not redone: the distillation finished in its Job and pod.
    assert kubectl.get("job", distil_job)["metadata"]["uid"] == uid
    assert [(r.name, r.phase) for r in kubelet.pods_of(distil_job)] == [(run.name, "Succeeded")]
    for job in kubectl.items("jobs", "-l", MANAGED):  # each stage ran once: one pod per shard
        shards = 2 if job["metadata"]["name"] == child_name("GradingRun", "pool") else 1
        assert job["status"]["succeeded"] == shards and job["status"].get("failed", 0) == 0
        assert [r.phase for r in kubelet.pods_of(job["metadata"]["name"])] == ["Succeeded"] * shards


def test_a_failing_stage_fails_with_its_reason_and_fails_its_dependants(
    cluster: tuple[Kubectl, Path, LocalKubelet], operator: Operator, tiny_lm: Path, tmp_path: Path
) -> None:
    kubectl, volume_root, _ = cluster
    fill_claims(volume_root, tiny_lm, [{"id": "q1", "problem": "1+1?", "answer": "2"}])
    broken = grading_spec("http://127.0.0.1:9/v1", "no-such-model", "broken-bank")
    broken["inference"] = {"engine": "transformers"}
    docs = [doc("GradingRun", "broken", broken), doc("DifficultyBank", "broken-bank", {"backoffLimit": 0})]
    kubectl("apply", "-f", str(dump(docs, tmp_path / "broken.yaml")))
    try:
        kubectl.wait("gradingrun/broken", "condition=Failed", 300)
        kubectl.wait("difficultybank/broken-bank", "condition=Failed", 120)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{operator.tail()}") from None
    failed = condition(kubectl.get("gradingrun", "broken"), "Failed")
    assert failed["reason"] == "BackoffLimitExceeded", failed
    assert "no-such-model" in failed["message"] and "does not exist" in failed["message"], failed
    dependant = condition(kubectl.get("difficultybank", "broken-bank"), "Failed")
    assert dependant["reason"] == "InputFailed" and "broken" in dependant["message"], dependant
    assert kubectl.get("gradingrun", "broken")["status"]["phase"] == "Failed"


def test_suspend_mid_stage_and_an_operator_restart_resume_without_redoing_work(
    cluster: tuple[Kubectl, Path, LocalKubelet], operator: Operator, tiny_lm: Path, tmp_path: Path
) -> None:
    """Grading against a server that stalls on the fourth question, so the stage is provably mid-run:
    the operator is SIGKILLed and restarted (same Job, same process), then the GradingRun is suspended
    (its process killed) and resumed: the new pod grades only what was left, each question once."""
    kubectl, volume_root, kubelet = cluster
    rows = math500(6)
    fill_claims(volume_root, tiny_lm, rows)
    prompts = [user_text(question(r), PromptSpec()) for r in rows]
    with FaultServer(script={prompts[3]: ["stall"]}, stall_s=600) as server:
        spec = grading_spec(server.url, "tiny", None)
        endpoint = {"url": server.url, "model": "m", "concurrency": 1, "maxRetries": 0, "timeoutSeconds": 600}
        spec["inference"] = {"engine": "http", "batchSize": 1, "endpoint": endpoint}
        kubectl("apply", "-f", str(dump([doc("GradingRun", "stall", spec)], tmp_path / "stall.yaml")))
        job = child_name("GradingRun", "stall")
        kubectl.wait(f"job/{job}", "create", 120)
        kubectl.wait(f"job/{job}", "jsonpath={.status.ready}=1", 120)
        (run,) = kubelet.pods_of(job)
        assert run.process is not None
        deadline = time.monotonic() + 240  # a guard against a hang, not a timing assertion
        while not server.attempts(prompts[3]):
            assert run.process.poll() is None and time.monotonic() < deadline, kubelet.log_of(run.name)
            process_wait(run.process, 0.1)  # the stall on question 4 holds the stage here
        # Continuous dispatch asks question 4 while question 3 may still be graded: wait until the
        # three before it are in the shard log, so that what the resume must not ask again is known.
        output = kubectl.get("gradingrun", "stall")["status"]["output"]
        logs = volume_root / "pvc" / output["claim"] / output["path"]
        while _logged_lines(logs) < 3:
            assert run.process.poll() is None and time.monotonic() < deadline, kubelet.log_of(run.name)
            process_wait(run.process, 0.1)
        uid = kubectl.get("job", job)["metadata"]["uid"]

        operator.kill()
        operator.start()
        assert kubectl.get("job", job)["metadata"]["uid"] == uid and run.process.poll() is None
        kubectl("patch", "gradingrun", "stall", "--type=merge", "-p", '{"spec": {"suspend": true}}')
        kubectl.wait("gradingrun/stall", "jsonpath={.status.phase}=Suspended", 120)
        assert run.process.wait(timeout=60) != 0  # the suspended stage's process was killed
        assert kubectl.items("jobs", "-l", "adacot.dev/name=stall") == []  # suspend deleted the Job
        asked_before = [len(server.attempts(p)) for p in prompts[:3]]

        kubectl("patch", "gradingrun", "stall", "--type=merge", "-p", '{"spec": {"suspend": false}}')
        kubectl.wait("gradingrun/stall", "condition=Complete", 300)
        assert [len(server.attempts(p)) for p in prompts[:3]] == asked_before  # not asked again
        assert len(server.attempts(prompts[3])) >= 2
    output = kubectl.get("gradingrun", "stall")["status"]["output"]
    graded = read_records(volume_root / "pvc" / output["claim"] / output["path"], GradedQuestion)
    assert sorted(r.key for r in graded) == sorted(r["id"] for r in rows)  # each question once
    # One pod killed by the suspension, one that finished: the restart started no second Job.
    assert [(r.deleted, r.phase) for r in kubelet.pods_of(job)] == [(True, "Running"), (False, "Succeeded")]


def _logged_lines(artifact: Path) -> int:
    """Complete records in the artifact's shard logs (adacot.artifacts.shards.AppendLog)."""
    return sum(p.read_bytes().count(b"\n") for p in artifact.glob("**/log-*-of-*.jsonl"))


def test_the_shipped_example_is_accepted_and_waits_for_its_claims(
    cluster: tuple[Kubectl, Path, LocalKubelet], operator: Operator
) -> None:
    """examples/distill.yaml as shipped, without its `models`/`datasets` claims in this namespace: the
    GradingRuns' pods cannot be scheduled, which their status says; the rest waits for its inputs."""
    kubectl, _, _ = cluster
    kubectl("delete", "pvc", "models", "datasets")
    kubectl("apply", "-f", str(REPO / "examples" / "distill.yaml"))
    unschedulable = 'jsonpath={.status.conditions[?(@.type=="Running")].reason}=Unschedulable'
    for name in ("qwen7b-pool", "qwen7b-eval"):
        kubectl.wait(f"gradingrun/{name}", unschedulable, 120)
        running = condition(kubectl.get("gradingrun", name), "Running")
        assert 'persistentvolumeclaim "' in running["message"] and "not found" in running["message"], running
    for kind, name in (("difficultybank", "qwen7b-bank"), ("distillationjob", "qwen7b-distil"),
                       ("sftjob", "qwen7b-sft")):  # fmt: skip
        kubectl.wait(f"{kind}/{name}", "jsonpath={.status.phase}=WaitingForInputs", 60)
    assert {j["metadata"]["name"] for j in kubectl.items("jobs", "-l", MANAGED)} == {
        child_name("GradingRun", "qwen7b-pool"), child_name("GradingRun", "qwen7b-eval")}  # fmt: skip
