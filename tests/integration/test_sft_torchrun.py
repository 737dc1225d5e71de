"""ZeRO-3 under `torchrun --nproc_per_node 2` on CPU (gloo): the pipeline launches torchrun, the loss goes
down, DeepSpeed checkpoints and the generated config are written, the gathered model loads in vLLM;
and the torchrun command an Indexed Job's environment produces."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import KV_CACHE_BYTES
from sft_helpers import FAST, math500_rows, sft_examples, sft_job, vllm_generate, write_dataset
from shared_data import needs_shared_data

from adacot.pipelines.sft_job import run_sft_job, torchrun_command

TRAINING = {**FAST, "epochs": 4, "saveSteps": 4}


@pytest.mark.integration
@needs_shared_data
def test_zero3_two_processes_train_checkpoint_and_serve(tiny_lm: Path, tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "train.jsonl", sft_examples(24))
    out = tmp_path / "sft"
    summary = run_sft_job(sft_job(tiny_lm, dataset, training=TRAINING, stage=3), out, nproc_per_node=2)

    assert summary["world_size"] == 2 and summary["deepspeed_stage"] == 3
    assert summary["loss"] < 0.8 * summary["first_loss"]
    config = json.loads((out / "checkpoints" / "deepspeed_config.json").read_text())
    assert config["zero_optimization"]["stage"] == 3
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "no checkpoint written"
    # DeepSpeed's partitioned optimizer state, one file per rank.
    assert len(list(checkpoints[-1].glob("global_step*/*optim_states.pt"))) == 2
    generated = vllm_generate(out / "model", math500_rows(1)[0]["problem"], KV_CACHE_BYTES)
    assert generated["tokens"] > 0


def test_torchrun_command_from_indexed_job_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    job = sft_job(tmp_path, tmp_path / "d.jsonl", training={}, stage=3).model_copy(deep=True)
    job.spec.nodes = 4
    monkeypatch.setenv("MASTER_ADDR", "sft-0.sft-headless")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    command = torchrun_command(job, tmp_path / "plan.json", 8, 2)

    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    flags = dict(zip(command[3:13:2], command[4:14:2], strict=True))
    assert flags == {
        "--nnodes": "4",
        "--node_rank": "2",
        "--nproc_per_node": "8",
        "--master_addr": "sft-0.sft-headless",
        "--master_port": "29500",
    }
    assert command[-3:] == ["-m", "adacot.training.train", str(tmp_path / "plan.json")]
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        torchrun_command(job, tmp_path / "plan.json", 8, 0)
