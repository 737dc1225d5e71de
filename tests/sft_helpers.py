"""SFT test data: real MATH-500 problems with short R1-style answers, as SftExample rows and SFTJob specs.

The answers are written here (a `<think>` block, then the boxed reference answer): the shape a teacher
writes, short enough that tiny models train on them in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shared_data import MATH500

from adacot.api.sft_job import SFTJob
from adacot.artifacts.rows import Message, SftExample

#: Hyper-parameters that train the tiny model visibly in seconds (tests add epochs, saveSteps, ...).
FAST = {
    "learningRate": 3e-3,
    "perDeviceBatchSize": 2,
    "gradientAccumulationSteps": 1,
    "maxSeqLength": 512,
    "warmupRatio": 0.0,
    "loggingSteps": 1,
    "lrScheduler": "linear",
}


def math500_rows(limit: int) -> list[dict[str, str]]:
    with MATH500.open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(limit), f, strict=False)]


def r1_answer(answer: str) -> str:
    return f"<think>\nLet me work through it step by step.\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def chat(index: int) -> list[dict[str, str]]:
    """MATH-500 problem `index` with its short R1-style answer, as chat messages."""
    row = math500_rows(index + 1)[index]
    return [
        {"role": "user", "content": row["problem"]},
        {"role": "assistant", "content": r1_answer(row["answer"])},
    ]


def sft_examples(limit: int, *, max_problem_chars: int = 400) -> list[SftExample]:
    rows = [r for r in math500_rows(4 * limit) if len(r["problem"]) <= max_problem_chars][:limit]
    return [
        SftExample(
            messages=[
                Message(role="user", content=r["problem"]),
                Message(role="assistant", content=r1_answer(r["answer"])),
            ],
            question_id=f"math500-{i}",
            level=None,
            source="math500",
        )
        for i, r in enumerate(rows)
    ]


def write_dataset(path: Path, examples: list[SftExample]) -> Path:
    path.write_text("".join(e.model_dump_json() + "\n" for e in examples))
    return path


def sft_job(
    model: Path, dataset: Path, *, training: dict[str, Any], stage: int = 0, name: str = "sft"
) -> SFTJob:
    return SFTJob.model_validate(
        {
            "apiVersion": "adacot.dev/v1alpha1",
            "kind": "SFTJob",
            "metadata": {"name": name},
            "spec": {
                "dataset": {"path": str(dataset)},
                "model": {"path": str(model)},
                "training": training,
                "deepspeed": {"stage": stage},
                "resources": {"gpus": 0},
            },
        }
    )


VLLM_SCRIPT = r"""
import json, sys
from vllm import LLM, SamplingParams

if __name__ == "__main__":
    llm = LLM(model=sys.argv[1], kv_cache_memory_bytes=int(sys.argv[2]), max_model_len=512, seed=0)
    prompt = [{"role": "user", "content": sys.argv[3]}]
    out = llm.chat([prompt], SamplingParams(max_tokens=16, temperature=0.0))[0].outputs[0]
    print("RESULT " + json.dumps({"text": out.text, "tokens": len(out.token_ids)}))
"""


def vllm_generate(model_dir: Path, prompt: str, kv_cache_bytes: str) -> dict[str, Any]:
    """Load `model_dir` in vLLM's offline engine (its own process: it needs the __main__ guard) and
    generate greedily from one chat prompt; returns the text and its token count."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", VLLM_SCRIPT, str(model_dir), kv_cache_bytes, prompt],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"vLLM failed ({done.returncode}):\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result
