"""The HTTP serving comparison shared by benchmarks/grading.py and benchmarks/distill.py.

One `python -m vllm.entrypoints.openai.api_server` on a tiny model built here (`build_models`), and two
clients alternating against it at the same concurrency: an adacot client (the grading stage's prompts
by default, or the caller's, e.g. the teacher's) through `OpenAIGenerator`, and vLLM's own serving
benchmark client (`vllm.benchmarks.serve`, what `vllm bench serve` runs). The server's generated-token
counter is read around every run, so both are seen to do the same work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_support import ROOT, free_port, timed

from adacot.backends.teacher_server import stop, wait_until_ready

KV_CACHE_BYTES = str(256 << 20)
ENGINE_FLAGS = [
    "--kv-cache-memory-bytes", KV_CACHE_BYTES, "--no-enable-prefix-caching", "--no-enable-chunked-prefill",
]  # fmt: skip
MAX_MODEL_LEN = 1024


def log(message: str) -> None:
    print(f"[serving bench] {message}", file=sys.stderr, flush=True)


def build_models(data: Path, root: Path) -> tuple[Path, Path]:
    from adacot.testing.tiny_models import build_tiny_lm
    from adacot.testing.tiny_prm import build_tiny_discriminative_prm

    problems = [json.loads(line)["problem"] for line in (data / "math500.jsonl").open(encoding="utf-8")]
    return build_tiny_lm(problems, root / "lm", seed=0), build_tiny_discriminative_prm(root / "prm", seed=1)


@contextlib.contextmanager
def api_server(model: Path, port: int, log_path: Path) -> Any:
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), *ENGINE_FLAGS,
    ]  # fmt: skip
    with log_path.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/v1", 300, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def generated_tokens(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(m[1]) for m in re.finditer(r"^vllm:generation_tokens_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    )


def adacot_client(
    base: str, questions: list[Any], args: argparse.Namespace, prompts: list[Any] | None = None
) -> dict[str, float]:
    """OpenAIGenerator over `prompts` (default: the grading stage's prompts for `questions`)."""
    from adacot.api.generation import Endpoint, PromptSpec, SamplingSpec
    from adacot.backends.openai_http import OpenAIGenerator
    from adacot.stages.prompts import build_prompt

    prompts = prompts or [build_prompt(q, PromptSpec()) for q in questions]
    sampling = SamplingSpec(samples_per_question=1, temperature=0.0, max_tokens=args.max_tokens)
    endpoint = Endpoint(url=f"{base}/v1", model="tiny", concurrency=args.concurrency, max_retries=0)
    with OpenAIGenerator(endpoint) as generator:
        seconds, completions = timed(lambda: list(generator.generate(prompts, sampling)))
        tokens = generator.usage.completion_tokens
    failed = sum(1 for c in completions for s in c.samples if s.finish_reason == "error")
    return {"seconds": seconds, "requests": len(completions) - failed, "output_tokens": tokens}


def vllm_client(base: str, dataset: Path, model: Path, args: argparse.Namespace) -> dict[str, float]:
    from vllm.benchmarks import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()  # type: ignore[no-untyped-call]
    serve.add_cli_args(parser)
    bench_args = parser.parse_args([
        "--backend", "openai-chat", "--base-url", base, "--endpoint", "/v1/chat/completions",
        "--model", "tiny", "--tokenizer", str(model), "--dataset-name", "custom",
        "--dataset-path", str(dataset), "--skip-chat-template", "--custom-output-len", str(args.max_tokens),
        "--disable-shuffle", "--num-prompts", str(args.questions), "--max-concurrency", str(args.concurrency),
        "--request-rate", "inf", "--temperature", "0", "--seed", "0", "--disable-tqdm",
        "--ready-check-timeout-sec", "0",
    ])  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):
        result = serve.main(bench_args)
    return {
        "seconds": result["duration"],
        "requests": result["completed"],
        "output_tokens": result["total_output_tokens"],
    }


Client = Callable[[str, list[Any], argparse.Namespace], dict[str, float]]


def bench_serving(
    model: Path, data: Path, root: Path, args: argparse.Namespace, client: Client | None = None
) -> dict[str, Any]:
    """adacot's HTTP client (`client`, default the grading stage's) against vLLM's benchmark client,
    alternating on one server; medians and the ratio of request rates."""
    send = client or adacot_client
    from adacot.api.common import DatasetSpec
    from adacot.api.generation import PromptSpec
    from adacot.artifacts.datasets import load_questions
    from adacot.stages.prompts import user_text

    questions = load_questions(DatasetSpec(path=str(data / "math500.jsonl"), limit=args.questions)).questions
    dataset = root / "custom.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": user_text(q, PromptSpec())}) + "\n" for q in questions))
    runs: dict[str, list[dict[str, float]]] = {"adacot": [], "vllm": []}
    with api_server(model, free_port(), root / "server.log") as base:
        clients = {
            "adacot": lambda: send(base, questions, args),
            "vllm": lambda: vllm_client(base, dataset, model, args),
        }
        send(base, questions, args)  # warm-up at full concurrency, outside the clock
        for repeat in range(args.repeats):
            for name in ("adacot", "vllm") if repeat % 2 == 0 else ("vllm", "adacot"):
                log(f"serving repeat {repeat + 1}/{args.repeats}: {name}")
                before = generated_tokens(base)
                run = clients[name]()
                runs[name].append(run | {"server_tokens": generated_tokens(base) - before})
    median = {name: median_run(r) for name, r in runs.items()}
    ratio = rate(median["adacot"]) / rate(median["vllm"])
    best = max(map(rate, runs["adacot"])) / max(map(rate, runs["vllm"]))
    return {"runs": runs, "median": median, "ratio": ratio, "ratio_of_best": best}


def rate(run: dict[str, float]) -> float:
    return run["requests"] / run["seconds"]


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median request rate (the lower middle one of an even count)."""
    return sorted(runs, key=rate)[(len(runs) - 1) // 2]


def parser(description: str | None, *, max_tokens: int, repeats: int) -> argparse.ArgumentParser:
    """The options of both serving benchmarks (data, questions, tokens, concurrency, repeats, --quick)."""
    made = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    made.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    made.add_argument("--questions", type=int, default=200)
    made.add_argument("--max-tokens", type=int, default=max_tokens)
    made.add_argument("--concurrency", type=int, default=32)
    made.add_argument("--repeats", type=int, default=repeats)
    made.add_argument("--quick", action="store_true", help="20 questions, 32 tokens, 1 repeat; no files.")
    return made


def quick(args: argparse.Namespace) -> None:
    """--quick: 20 questions, 32 tokens, one repeat; and vLLM's logs off stdout (it holds the table)."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if args.quick:
        args.questions, args.max_tokens, args.repeats = 20, 32, 1
