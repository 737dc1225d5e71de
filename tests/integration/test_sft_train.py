"""The SFT stage end to end on the tiny model and real MATH-500 chat records: a short single-process run
(loss goes down, the artifact is complete, the saved model loads in vLLM and generates), LoRA merged
into an ordinary model, clear errors before training, and a SIGKILLed run resumed from its checkpoint
(global step continues)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import KV_CACHE_BYTES
from sft_helpers import FAST, math500_rows, sft_examples, sft_job, vllm_generate, write_dataset
from shared_data import needs_shared_data
from transformers import AutoModelForCausalLM

from adacot.artifacts.rows import LossPoint
from adacot.artifacts.store import is_complete, read_records
from adacot.pipelines.sft_job import read_summary, run_sft_job

pytestmark = [pytest.mark.integration, needs_shared_data]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("sft_data") / "train.jsonl", sft_examples(24))


def test_short_training_lowers_loss_and_vllm_serves_the_model(
    tiny_lm: Path, dataset: Path, tmp_path: Path
) -> None:
    job = sft_job(tiny_lm, dataset, training={**FAST, "epochs": 3, "saveSteps": 100})
    out = tmp_path / "sft"
    summary = run_sft_job(job, out)

    assert summary["loss"] < 0.8 * summary["first_loss"]
    assert summary["global_step"] == 3 * (summary["data"]["rows"] + 1) // 2  # batch 2, 3 epochs
    assert summary["data"]["examples"] == 24 and summary["data"]["dropped_too_long"] == 0
    assert summary["data"]["rows"] < 24  # packed
    assert summary["tokens_per_s"] > 0 and summary["world_size"] == 1 and summary["precision"] == "fp32"
    assert is_complete(out) and (out / "loss.png").stat().st_size > 0
    points = list(read_records(out, LossPoint))
    assert [p.step for p in points] == list(range(1, summary["global_step"] + 1))
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["metrics"]["loss"] == summary["loss"] and manifest["kind"] == "SFTJob"
    model = out / "model"
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json"):
        assert (model / name).is_file(), name
    assert "im_start" in (model / "tokenizer_config.json").read_text() + _text(model / "chat_template.jinja")
    assert summary["model_files"]["model.safetensors"]

    generated = vllm_generate(model, math500_rows(1)[0]["problem"], KV_CACHE_BYTES)
    assert generated["tokens"] > 0
    assert run_sft_job(job, out) == summary  # complete: nothing is trained again
    (out / "_SUCCESS").unlink()  # as if killed while writing the outputs, after training
    assert run_sft_job(job, out) == summary  # outputs rewritten from the result (runtime_s would differ)


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_lora_adapters_are_merged_into_an_ordinary_model(
    tiny_lm: Path, dataset: Path, tmp_path: Path
) -> None:
    training = {
        **FAST,
        "epochs": 1,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "gradientCheckpointing": True,
    }
    summary = run_sft_job(sft_job(tiny_lm, dataset, training=training), tmp_path / "lora")

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_lm)
    assert not any("lora" in name for name in merged.state_dict())
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, base.state_dict()[n])]
    assert any("q_proj" in n for n in changed)
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    assert summary["global_step"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("model", "no config.json"),
        ("length", "no example fits maxSeqLength 64"),
        ("dataset", "does not exist"),
        ("precision", "fp16 needs a GPU"),
    ],
)
def test_bad_inputs_fail_before_training(
    tiny_lm: Path, dataset: Path, tmp_path: Path, change: str, message: str
) -> None:
    model, data, training = tiny_lm, dataset, dict(FAST)
    if change == "model":
        model = tmp_path / "no-model"
        model.mkdir()
    elif change == "precision":
        training["precision"] = "fp16"
    elif change == "length":
        training["maxSeqLength"] = 64
    else:
        data = tmp_path / "missing.jsonl"
    with pytest.raises(ValueError, match=message):
        run_sft_job(sft_job(model, data, training=training), tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()


def _wait_for_checkpoint(out: Path, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The trainer state of the first complete checkpoint (read at once: newer ones rotate it away)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = sorted((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
        if done:
            state: dict[str, Any] = json.loads(done[0].read_text())
            return state
        assert process.poll() is None, f"training ended before a checkpoint:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)  # polling the file system, not timing anything
    raise AssertionError(f"no checkpoint within 300 s:\n{log.read_text()[-3000:]}")


def test_killed_training_resumes_from_its_checkpoint(tiny_lm: Path, dataset: Path, tmp_path: Path) -> None:
    """ZeRO-2 in one process (DeepSpeed's single-rank environment), through `adacot stage sftjob`: the
    first run is SIGKILLed once a checkpoint exists, the second resumes from the newest one."""
    training = {
        **FAST,
        "packing": False,
        "perDeviceBatchSize": 4,
        "epochs": 4,
        "saveSteps": 3,
        "saveTotalLimit": 2,
        "gradientCheckpointing": False,
    }
    job = sft_job(tiny_lm, dataset, training=training, stage=2)
    spec, out = tmp_path / "sft.yaml", tmp_path / "sft"
    spec.write_text(yaml.safe_dump(job.model_dump(mode="json", by_alias=True, exclude_none=True)))
    command = [
        str(Path(sys.executable).with_name("adacot")),
        "stage",
        "sftjob",
        "--spec",
        str(spec),
        "--out",
        str(out),
    ]
    with (tmp_path / "first.log").open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            saved = _wait_for_checkpoint(out, process, tmp_path / "first.log")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert not is_complete(out)

    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-4000:]
    summary = read_summary(out)
    total_steps = 4 * 24 // 4
    assert summary["resumed_from"].startswith("checkpoint-") and summary["deepspeed_stage"] == 2
    assert summary["resumed_at_step"] >= saved["global_step"] >= 3
    assert summary["global_step"] == total_steps
    assert list((out / "checkpoints").glob("checkpoint-*/global_step*/*optim_states.pt"))  # DeepSpeed's
    assert (out / "checkpoints" / "deepspeed_config.json").is_file()
    # Only the steps after the checkpoint were trained again: fewer tokens than a whole run.
    assert summary["tokens_this_run"] < 4 * summary["data"]["tokens"]
    steps = [p.step for p in read_records(out, LossPoint)]
    assert steps == list(range(1, total_steps + 1))  # one curve, no step twice


def test_cli_trains_from_flags_and_reports_bad_inputs(tiny_lm: Path, dataset: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adacot.cli.main import main

    out = tmp_path / "cli"
    flags = [
        "--data",
        str(dataset),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--max-seq-length",
        "512",
        "--batch-size",
        "4",
        "--grad-accum",
        "1",
        "--out",
    ]
    result = CliRunner().invoke(main, ["sft", "--model", str(tiny_lm), *flags, str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{\n") :])["global_step"] > 0
    assert is_complete(out)

    missing = CliRunner().invoke(main, ["sft", *flags[:2], "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "--model and --data" in missing.output
    bad = CliRunner().invoke(main, ["sft", "--model", str(tmp_path), *flags, str(tmp_path / "y")])
    assert bad.exit_code == 1 and "no config.json" in bad.output
