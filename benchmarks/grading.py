"""Grading throughput: adacot's generation paths against vLLM's own, in one run.

    python benchmarks/grading.py [--data ../shared/data] [--questions 200] [--max-tokens 128]
                                 [--concurrency 32] [--repeats 5] [--quick]

Builds its own tiny model (adacot.testing.tiny_models, random weights, seed 0) and tiny discriminative PRM
(adacot.testing.tiny_prm) in a temporary directory, then measures:

a. Offline engine, the production path. The grading stage's generation (`adacot.stages.grade.
   generate_attempts`: prompts built from the questions, chat template, tokenisation, per-question seeds,
   per-prompt SamplingParams, VllmGenerator from `make_generator` with adacot's default layout, which is
   vLLM's: engine core in its own process) against `vllm.LLM.generate` called directly on the same engine
   object, with the rendered prompt texts and per-prompt SamplingParams of the same values (n=1,
   temperature 0.6, top_p 0.95, each question's seed `derive_seed(0, id)`, as the stage draws it). Same
   engine, so the same settings by construction (fixed KV cache bytes; prefix caching off so repeats do
   the same work; chunked prefill off, see adacot.backends.vllm). Runs alternate; the median and the
   minimum of `--repeats` runs are reported with their spread. What must be equal is checked and a
   difference aborts the run: the prompt token ids the engine saw, the sampling parameters, the number of
   prompts. The outputs themselves need not be: in vLLM's default layout the engine core starts stepping
   while requests still arrive, so batch composition varies from run to run, and the CPU kernels' float
   results depend on it (a random-weight model's flat distributions turn that into other tokens). The
   share of differing outputs is reported instead (`production.differing_share`). Then the same
   comparison in a child process with the engine core in-process (VllmGenerator(in_process=True), the
   option kept for unguarded callers), and the time to verify the answers (MathVerifier), to score the
   wrong ones with the PRM, and `run_grading_run` end to end on the loaded engine.
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


def direct_inputs(spec: Any, questions: list[Any], tokenizer: Any) -> tuple[list[str], list[Any]]:
    """What a user calling vllm.LLM.generate would pass: rendered prompt texts and per-prompt
    SamplingParams (each question's seed, drawn as the grading stage documents it)."""
    from vllm import SamplingParams

    from adacot.stages.prompts import build_prompt, derive_seed

    texts, params, s = [], [], spec.sampling
    for question in questions:
        messages = [{"role": r, "content": c} for r, c in build_prompt(question, spec.prompt).messages]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        seed = derive_seed(s.seed, question.id)
        params.append(
            SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=seed)
        )
    return texts, params


def check_same_work(
    spec: Any, questions: list[Any], generator: Any, outputs: list[Any], params: list[Any]
) -> None:
    """Abort when the two paths did not ask the engine for the same work: prompt token ids and sampling
    parameters, question by question (what the stage builds is rebuilt here with its own functions)."""
    from adacot.backends.vllm import sampling_params
    from adacot.stages.prompts import build_prompt, derive_seed

    fields = ("n", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "min_tokens", "ignore_eos")
    if len(outputs) != len(questions):
        raise RuntimeError(f"direct call returned {len(outputs)} outputs for {len(questions)} prompts")
    for question, output, direct in zip(questions, outputs, params, strict=True):
        prompt = build_prompt(question, spec.prompt, derive_seed(spec.sampling.seed, question.id))
        if list(output.prompt_token_ids) != generator._token_ids(prompt):
            raise RuntimeError(f"{question.id}: the paths gave the engine different prompt tokens")
        ours = sampling_params(spec.sampling, prompt.seed)
        differ = [f for f in fields if _unset(getattr(ours, f)) != _unset(getattr(direct, f))]
        if differ:
            raise RuntimeError(f"{question.id}: the paths' sampling parameters differ in {differ}")


def _unset(value: Any) -> Any:
    """vLLM spells "off" several ways (None, 0, -1 for top_k, [] for stop)."""
    return None if value in (None, 0, -1, [], False) else value


def spread(seconds: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds)}


def compare_on_engine(resource: Any, repeats: int) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Alternate adacot's generation and the direct call on one engine built by grade's factory (in the
    layout the environment gives VllmGenerator's default).

    Returns the figures, the generator (still open) and the attempts of the last adacot run.
    """
    from adacot.artifacts.datasets import load_questions
    from adacot.backends.factory import make_generator
    from adacot.stages.grade import generate_attempts

    spec = resource.spec
    questions = load_questions(spec.questions).questions
    load_s, generator = timed(lambda: make_generator(spec.model, spec.inference, chat=True))
    layout = "in-process" if generator.in_process else "engine core in its own process"
    llm = generator._llm  # the very engine VllmGenerator drives: identical settings for the baseline
    texts, params = direct_inputs(spec, questions, llm.get_tokenizer())
    outputs = llm.generate(texts, params, use_tqdm=False)  # warm-up at full batch size, outside the clock
    check_same_work(spec, questions, generator, outputs, params)
    adacot_s, direct_s, differing = [], [], []
    for repeat in range(repeats):
        log(f"offline repeat {repeat + 1}/{repeats} ({layout})")
        seconds, outputs = timed(lambda: llm.generate(texts, params, use_tqdm=False))
        direct_s.append(seconds)
        seconds, attempts = timed(lambda: generate_attempts(questions, generator, spec))
        adacot_s.append(seconds)
        ours = [attempts[q.id][0] for q in questions]
        differing.append(sum(a.text != o.outputs[0].text for a, o in zip(ours, outputs, strict=True)))
    figures = {
        "layout": layout,
        "prompts": len(questions),
        "output_tokens": sum(len(o.outputs[0].token_ids) for o in outputs),
        "adacot_tokens": sum(a.completion_tokens or 0 for a in ours),
        "same_prompts_and_parameters": True,  # check_same_work raised otherwise
        "differing_outputs": differing,
        "differing_share": sum(differing) / (len(questions) * repeats),
        "engine_load_s": load_s,
        "direct_s": direct_s,
        "adacot_s": adacot_s,
        "direct": spread(direct_s),
        "adacot": spread(adacot_s),
        "ratio": statistics.median(adacot_s) / statistics.median(direct_s),
        "ratio_of_minima": min(adacot_s) / min(direct_s),
    }
    return figures, generator, attempts


def bench_offline(resource: Any, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """In this process with adacot's default layout (the production path), then scoring and end to end."""
    from adacot.artifacts.datasets import load_questions
    from adacot.pipelines.grading_run import run_grading_run

    figures, generator, attempts = compare_on_engine(resource, args.repeats)
    if generator.in_process:
        raise RuntimeError(f"VllmGenerator's default ran in-process ({IN_PROCESS_ENV} set?)")
    questions = load_questions(resource.spec.questions).questions
    after = scoring_times(questions, attempts, resource.spec)
    end_to_end_s, summary = timed(lambda: run_grading_run(resource, out, generator=lambda: generator))
    generator.close()
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


def in_process_child(resource: Any, repeats: int) -> dict[str, Any]:
    """The same comparison with the engine core in-process (the option VllmGenerator keeps), in a fresh
    interpreter so that it shares no engine state with the production run."""
    config = {"resource": resource.model_dump(mode="json", by_alias=True), "repeats": repeats}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    config_path = Path(handle.name)
    result_path = config_path.with_suffix(".result.json")
    try:
        env = os.environ | {IN_PROCESS_ENV: "0"}
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


def table(production: dict[str, Any], serving: dict[str, Any], args: argparse.Namespace) -> str:
    o, d = production, production["in_process"]
    a, v = serving["median"]["adacot"], serving["median"]["vllm"]
    n = f"{o['prompts']} prompts, median of {len(o['adacot_s'])}"

    def seconds(figures: dict[str, float]) -> str:
        return f"{figures['median_s']:.2f} s"

    def span(figures: dict[str, float]) -> str:
        return f"min {figures['min_s']:.2f} s, max {figures['max_s']:.2f} s"

    def differing(f: dict[str, Any]) -> str:
        share = 100 * f["differing_share"]
        return f"{share:.1f} % of outputs differ from the direct call's (same prompts and parameters)"

    rows = [
        ("a. production: adacot generate_attempts, VllmGenerator default (engine core in its own process)",
         seconds(o["adacot"]), f"{n}; {span(o['adacot'])}; {o['adacot_tokens']} tokens"),
        ("a. raw vllm.LLM.generate, default layout, same engine", seconds(o["direct"]),
         f"{span(o['direct'])}; {o['output_tokens']} tokens"),
        ("**a. production.ratio: adacot default / raw vLLM default layout (goal <= 1.10)**",
         f"**{o['ratio']:.3f}**", f"medians; ratio of minima {o['ratio_of_minima']:.3f}; {differing(o)}"),
        ("a. in-process option: adacot generate_attempts (VllmGenerator(in_process=True))",
         seconds(d["adacot"]), f"{n}; {span(d['adacot'])}; {d['adacot_tokens']} tokens"),
        ("a. in-process: vllm.LLM.generate, same engine", seconds(d["direct"]),
         f"{span(d['direct'])}; {d['output_tokens']} tokens"),
        ("a. ratio adacot / direct, both in-process", f"{d['ratio']:.3f}",
         f"ratio of minima {d['ratio_of_minima']:.3f}; {differing(d)}"),
        ("a. cost of the in-process option: adacot in-process / raw vLLM default layout",
         f"{d['adacot']['median_s'] / o['direct']['median_s']:.3f}", "medians"),
        ("a. verification (MathVerifier, 2 workers)", f"{o['verify_s']:.2f} s", f"{o['prompts']} answers"),
        ("a. PRM scoring (tiny discriminative PRM)", f"{o['prm_s']:.2f} s",
         f"{o['prm_traces']} traces; load {o['prm_load_s']:.1f} s apart"),
        ("a. run_grading_run end to end (engine loaded, default layout)", f"{o['end_to_end_s']:.2f} s",
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
        production = bench_offline(resource, args, root / "graded")
        log("the same comparison with the engine core in-process, in a child process")
        production["in_process"] = in_process_child(resource, args.repeats)
        serving = bench_serving(model, args.data, root, args)
    report(info, production, serving, args)


def report(
    info: dict[str, Any], production: dict[str, Any], serving: dict[str, Any], args: argparse.Namespace
) -> None:
    text = table(production, serving, args)
    info["load_after"] = os.getloadavg()[0]
    print(header(info) + f"; {info['load_after']:.2f} at the end" + "\n\n" + text)
    if not args.quick:
        settings = {k: getattr(args, k) for k in ("questions", "max_tokens", "concurrency", "repeats")}
        payload = {"settings": settings, "production": production, "serving": serving}
        write_results("grading", info, text, payload)


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    main()
