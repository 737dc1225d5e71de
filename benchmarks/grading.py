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
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_support import header, machine, timed, write_results
from serving import ENGINE_FLAGS, MAX_MODEL_LEN, bench_serving, build_models, rate
from serving import parser as serving_parser
from serving import quick as quick_settings

ROOT = Path(__file__).resolve().parent.parent
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


# ---------------------------------------------------------------- setup


def grading_run(data: Path, model: Path, prm: Path, args: argparse.Namespace) -> Any:
    from adacot.api.grading_run import GradingRun

    return GradingRun.model_validate({
        "kind": "GradingRun", "metadata": {"name": "bench"},
        "spec": {
            "questions": {"path": str(data / "math500.jsonl"), "limit": args.questions},
            "model": {"path": str(model), "maxModelLen": MAX_MODEL_LEN},
            "inference": {"engine": "vllm", "batchSize": 256, "vllm": {"extraArgs": ENGINE_FLAGS}},
            "sampling": {"samplesPerQuestion": 1, "maxTokens": args.max_tokens, "seed": 0},
            "grader": {"prm": {"model": {"path": str(prm)}, "stepSplit": "newlines"}},
            "verification": {"workers": 2},
        },
    })  # fmt: skip


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


# ---------------------------------------------------------------- report


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
    parser = serving_parser(__doc__, max_tokens=128, repeats=5)
    parser.add_argument("--layout-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick_settings(args)
    if args.layout_child:
        return run_layout_child(args.layout_child)
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
    print(header(info) + "\n\n" + text)
    if not args.quick:
        settings = {k: getattr(args, k) for k in ("questions", "max_tokens", "concurrency", "repeats")}
        write_results("grading", info, text, {"settings": settings, "offline": offline, "serving": serving})


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    main()
