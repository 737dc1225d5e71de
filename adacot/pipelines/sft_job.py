"""`run_sft_job`: check the inputs, train (in-process or under torchrun), then write the SFT artifact.

Callers: `adacot stage sftjob` (one pod per node of an Indexed Job), `adacot sft`, `adacot run`.

Before anything expensive: the model directory must hold a config and a tokenizer, the dataset must
exist (a DistillationJob's output must be complete), and at least one example must fit
maxSeqLength after tokenisation with the model's chat template (over-long examples are counted). The
template is spec.model.chatTemplate when set, else the tokenizer's own; one that drops the reasoning
before `</think>` from assistant turns (R1-distilled models' templates) is refused here.

Processes: nodes x nproc_per_node ranks. nproc_per_node is the caller's, else $ADACOT_NPROC_PER_NODE,
else resources.gpus (at least 1). One rank trains in this process (DeepSpeed gets the single-rank
environment it otherwise looks for MPI to provide); more start `torchrun --nnodes N --node_rank R
--nproc_per_node P --master_addr A --master_port PORT -m adacot.training.train PLAN.json`, with R from
JOB_COMPLETION_INDEX (Indexed Job), A from $MASTER_ADDR (the headless Service name of pod 0; 127.0.0.1
for one node) and PORT from $MASTER_PORT or spec.masterPort. Node 0 writes the artifact once torchrun
has finished; the other nodes return a short node summary.

Layout of the output directory (besides the artifact contract of adacot.artifacts.store)::

    train_plan.json                     what every rank trains with
    checkpoints/checkpoint-<step>/      Trainer checkpoints (resume), deepspeed_config.json beside them
    model/                              the final model + tokenizer + generation config (vLLM loads it)
    adapter/                            LoRA adapters (only with training.lora), merged into model/
    data/part-00000.jsonl               LossPoint rows: the logged loss per step
    loss.png, summary.json, train-node<R>.log, train_result.json

Restarts: an incomplete directory resumes from its newest checkpoint (the Trainer's global step,
optimizer, scheduler and data order continue); one whose training finished (train_result.json) only
writes the outputs; a complete one returns its summary.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adacot.api.common import ModelSpec
from adacot.api.sft_job import SFTJob
from adacot.api.stage_pod import NPROC_ENV
from adacot.artifacts.manifest import Manifest, atomic_write_bytes
from adacot.artifacts.rows import LossPoint
from adacot.artifacts.store import ArtifactDir, is_complete
from adacot.artifacts.summary import read_summary, write_summary
from adacot.pipelines.termination import terminate_with
from adacot.progress.meter import ProgressCallback
from adacot.stages.evaluate import status_rows
from adacot.training.train import MODEL_DIR, RESULT_NAME, TrainPlan

PLAN_NAME, LOSS_PNG, EVALUATION_DIR = "train_plan.json", "loss.png", "evaluation"
#: The figures the termination message carries (the operator copies them into status).
SHORT_KEYS = ("kind", "name", "loss", "first_loss", "global_step", "tokens_per_s", "world_size",
              "resumed_from", "evaluation")  # fmt: skip
EvaluationProgress = Callable[[str], ProgressCallback | None]


def run_sft_job(
    resource: SFTJob,
    out_dir: str | Path,
    *,
    dataset_dir: str | Path | None = None,
    model_path: str | Path | None = None,
    nproc_per_node: int | None = None,
    progress: EvaluationProgress | None = None,
) -> dict[str, Any]:
    """Train the SFTJob into `out_dir`, then evaluate it when the spec asks; returns its summary (node 0)
    or a node summary (other nodes).

    `dataset_dir` is the referenced DistillationJob's artifact; `model_path` overrides spec.model (and
    is required when spec.model is unset: the bank's model is known to the caller, not to this stage).
    Evaluation runs before the artifact is finalised, so `_SUCCESS` means trained *and* evaluated, and
    an interrupted evaluation resumes (question by question) on the next run.
    """
    artifact = ArtifactDir(out_dir)
    if artifact.complete:
        return read_summary(artifact.root)
    plan = make_plan(resource, artifact.root, dataset_dir, model_path)
    preflight(plan)
    artifact.prepare()
    atomic_write_bytes(artifact.root / PLAN_NAME, plan.model_dump_json(indent=2).encode())
    nproc = _nproc(resource, nproc_per_node)
    node = _node_rank(resource.spec.nodes)
    if (artifact.root / RESULT_NAME).is_file():
        pass  # training finished (the result is written last, atomically); only the outputs were cut short
    elif resource.spec.nodes * nproc == 1:
        _train_here(plan)
    else:
        _torchrun(resource, artifact.root, nproc, node)
    if node != 0:
        return {"complete": False, "node_rank": node, "nodes": resource.spec.nodes}
    evaluation = _evaluate(resource, artifact.root, plan, progress)
    return finalize(resource, artifact, evaluation)


def _evaluate(
    resource: SFTJob, root: Path, plan: TrainPlan, progress: EvaluationProgress | None
) -> dict[str, Any] | None:
    """The trained model (and the base model with compareBase) on spec.evaluation's benchmarks, into
    <out>/evaluation; None when the spec asks for no evaluation."""
    evaluation = resource.spec.evaluation
    if evaluation is None:
        return None
    from adacot.pipelines.evaluation import run_evaluation

    trained = ModelSpec(path=str(root / MODEL_DIR))
    base = resource.spec.model or ModelSpec(path=plan.model_path)
    compared = base if evaluation.compare_base else None
    return run_evaluation(
        evaluation, root / EVALUATION_DIR, model=trained, base_model=compared, progress=progress
    )


# ------------------------------------------------------------------------------------------ inputs


def make_plan(
    resource: SFTJob, out: Path, dataset_dir: str | Path | None, model_path: str | Path | None
) -> TrainPlan:
    spec = resource.spec
    if spec.dataset.path is not None:
        dataset, fmt = Path(spec.dataset.path), spec.dataset.format
    elif dataset_dir is not None:
        dataset, fmt = Path(dataset_dir), "messages"
        if not is_complete(dataset):
            raise ValueError(f"dataset {dataset}: the DistillationJob's output is not complete")
    else:
        ref = spec.dataset.distillation_job_ref
        raise ValueError(f"dataset.distillationJobRef {ref.name if ref else ''!r}: give its output directory")
    model = model_path or (spec.model.path or spec.model.hub_id if spec.model else None)
    if model is None:
        raise ValueError("no base model: spec.model is unset, so give the bank's model path")
    return TrainPlan(
        model_path=str(model),
        chat_template=spec.model.chat_template if spec.model else None,
        dataset_path=str(dataset),
        dataset_format=fmt,
        out_dir=str(out),
        training=spec.training,
        deepspeed=spec.deepspeed,
    )


def preflight(plan: TrainPlan) -> dict[str, int]:
    """Fail fast on a missing model, a missing dataset, a chat template that drops the reasoning
    (TemplateError), or data of which nothing fits; returns counts."""
    from adacot.training.data import TokenizeStats, load_tokenizer, read_conversations, tokenize_all
    from adacot.training.train import precision_of

    precision_of(plan.training)  # fp16 without a GPU
    model = Path(plan.model_path)
    if (model.is_absolute() or model.exists()) and not (model / "config.json").is_file():
        raise ValueError(f"model {model}: no config.json (not a model directory)")
    tokenizer = load_tokenizer(plan.model_path, plan.chat_template)
    if tokenizer.chat_template is None:
        raise ValueError(f"model {plan.model_path}: the tokenizer has no chat template")
    stats, t = TokenizeStats(), plan.training
    conversations = read_conversations(Path(plan.dataset_path), plan.dataset_format)
    tokenize_all(
        tokenizer, conversations, t.max_seq_length, assistant_only=t.assistant_only_loss, stats=stats
    )
    if stats.examples == 0:
        raise ValueError(
            f"dataset {plan.dataset_path}: no example fits maxSeqLength {t.max_seq_length} "
            f"({stats.dropped_too_long} too long, {stats.dropped_no_loss} without assistant tokens)"
        )
    return stats.as_dict()


# ------------------------------------------------------------------------------------------ processes


def _nproc(resource: SFTJob, given: int | None) -> int:
    value = given or int(os.environ.get(NPROC_ENV, "0")) or resource.spec.resources.gpus
    return max(1, value)


def _node_rank(nodes: int) -> int:
    rank = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    if not 0 <= rank < nodes:
        raise ValueError(f"JOB_COMPLETION_INDEX {rank} is outside 0..{nodes - 1}")
    return rank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_here(plan: TrainPlan) -> None:
    from adacot.training.train import leave_process_group, train

    if plan.deepspeed.stage != 0:
        # DeepSpeed looks for MPI unless the single-rank rendezvous is spelled out.
        for key, value in (
            ("RANK", "0"),
            ("LOCAL_RANK", "0"),
            ("WORLD_SIZE", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", str(_free_port())),
        ):
            os.environ.setdefault(key, value)
    train(plan)
    leave_process_group()


def torchrun_command(resource: SFTJob, plan_path: Path, nproc: int, node: int) -> list[str]:
    """The torchrun command line of node `node` (the address and port from the Indexed Job's env)."""
    nodes = resource.spec.nodes
    address = os.environ.get("MASTER_ADDR") or ("127.0.0.1" if nodes == 1 else None)
    if address is None:
        raise ValueError(f"{nodes} nodes: MASTER_ADDR must name node 0 (the headless Service of the Job)")
    port = os.environ.get("MASTER_PORT") or str(resource.spec.master_port)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nodes),
        "--node_rank",
        str(node),
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        address,
        "--master_port",
        port,
        "-m",
        "adacot.training.train",
        str(plan_path),
    ]


def _torchrun(resource: SFTJob, root: Path, nproc: int, node: int) -> None:
    command = torchrun_command(resource, root / PLAN_NAME, nproc, node)
    log = root / f"train-node{node}.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    with log.open("ab") as handle:
        code = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise RuntimeError(f"torchrun exited with {code}; last lines of {log}:\n" + "\n".join(tail))


# ------------------------------------------------------------------------------------------ outputs


def finalize(
    resource: SFTJob, artifact: ArtifactDir, evaluation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Loss rows, loss curve, summary (with the evaluation's), manifest and _SUCCESS."""
    from adacot.plots.loss import write_loss_curve

    result = json.loads((artifact.root / RESULT_NAME).read_text())
    points = [LossPoint.model_validate(p) for p in result["losses"]]
    artifact.write_shard("part-00000.jsonl", points, LossPoint)
    summary = _summary(resource, artifact.root, result)
    if evaluation is not None:
        summary["evaluation"] = evaluation
    if points:
        write_loss_curve(
            [p.step for p in points],
            [p.loss for p in points],
            artifact.root / LOSS_PNG,
            title=f"SFTJob {resource.metadata.name}",
            resumed_at=summary["resumed_at_step"],
        )
    write_summary(artifact.root, summary)
    artifact.finalize(
        Manifest(
            kind=resource.KIND,
            name=resource.metadata.name,
            record_type=LossPoint.__name__,
            spec=resource.spec.model_dump(mode="json", by_alias=True),
            seed=resource.spec.training.seed,
            metrics=summary,
        )
    )
    terminate_with(
        {**summary, "evaluation": status_rows(evaluation) if evaluation else None}, SHORT_KEYS, artifact.root
    )
    return summary


def _resumed_step(resumed: str | None) -> int | None:
    return int(resumed.rsplit("-", 1)[1]) if resumed else None


def _summary(resource: SFTJob, root: Path, result: dict[str, Any]) -> dict[str, Any]:
    from adacot.artifacts.jsonio import sha256_file

    losses = result["losses"]
    model = root / MODEL_DIR
    return {
        "kind": resource.KIND,
        "name": resource.metadata.name,
        "loss": result["final_loss"],
        "first_loss": losses[0]["loss"] if losses else None,
        "train_loss": result["train_loss"],
        "global_step": result["global_step"],
        "epoch": result["epoch"],
        "resumed_from": result["resumed_from"],
        "resumed_at_step": _resumed_step(result["resumed_from"]),
        "tokens_per_s": result["tokens_per_s"],
        "tokens_this_run": result["tokens_this_run"],
        "runtime_s": result["runtime_s"],
        "world_size": result["world_size"],
        "precision": result["precision"],
        "deepspeed_stage": resource.spec.deepspeed.stage,
        "data": result["data"],
        "model_dir": MODEL_DIR,
        "model_files": {p.name: sha256_file(p) for p in sorted(model.glob("*.safetensors"))},
    }
