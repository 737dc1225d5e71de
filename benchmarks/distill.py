"""The distillation stage's teacher path: client throughput against vLLM's serving benchmark client, and
slot use against a heavy-tailed teacher.

    python benchmarks/distill.py [--data ../shared/data] [--questions 200] [--max-tokens 256]
                                 [--concurrency 32] [--repeats 3] [--quick]
                                 [--tail-questions 400] [--tail-concurrency 16] [--tail-repeats 2]
                                 [--tail-seed 0] [--tail-only]

Part 1, throughput:
Builds its own tiny model (adacot.testing.tiny_models, seed 0), starts one
`python -m vllm.entrypoints.openai.api_server` on it (the local stand-in for a teacher endpoint), and
alternates two clients at the same concurrency against it:

- adacot: the DistillationJob's teacher path - the teacher's prompts (`teacher_prompt`, per-question
  seeds from `derive_seed`) sent by `OpenAIGenerator` (/v1/chat/completions, non-streaming, with its
  rate limiter, retry machinery and usage accounting in the loop);
- vLLM's serving benchmark client (`vllm.benchmarks.serve`, what `vllm bench serve` runs; openai-chat,
  streaming) on the same user messages.

Matched: messages, max tokens, greedy decoding (temperature 0: both clients get the same tokens
without ignore_eos, which adacot's client does not send), unbounded request rate. The server's own
generated-token counter is read around every run to show both produced the same work. The goal is a
ratio of sustained requests/s (adacot / vLLM) >= 0.9. Serving helpers are shared with
benchmarks/serving.py.

Part 2, the heavy-tailed teacher (benchmarks/teacher_tail.py): answer times log-normal per question
(median 0.3 s, sigma 1), concurrency 16, 400 questions; the whole DistillationJob with continuous
dispatch against the same job dispatched in batches (the stage's path before), alternating. Goal: wall
time <= 1.25 x the ideal max(sum of answer times / concurrency, longest answer); then a SIGKILL half-way
and a resume, whose manifest usage must equal the sum over the records.

Prints markdown tables; writes benchmarks/results/distill.json and .md (not with --quick or
--tail-only). Timings are wall-clock on whatever else the machine runs (the 1-minute load average is
recorded with every tail run); compare ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from bench_support import header, machine, write_results
from serving import adacot_client, bench_serving, build_models, rate
from serving import parser as serving_parser
from serving import quick as quick_settings
from teacher_tail import measure as measure_tail


def teacher_client(base: str, questions: list[Any], args: argparse.Namespace) -> dict[str, float]:
    """The distillation stage's request path: teacher prompts and seeds, sent by OpenAIGenerator."""
    from adacot.api.generation import PromptSpec
    from adacot.stages.distill import teacher_prompt
    from adacot.stages.prompts import derive_seed, user_text

    spec = PromptSpec()
    prompts = [teacher_prompt(user_text(q, spec), spec, derive_seed(0, q.id, 0)) for q in questions]
    return adacot_client(base, questions, args, prompts)


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "| client | requests/s | output tokens/s | server tokens | notes |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, label in (("adacot", "adacot teacher client (OpenAIGenerator)"), ("vllm", "vllm bench serve")):
        run = result["median"][name]
        lines.append(
            f"| {label} | {rate(run):.2f} | {run['output_tokens'] / run['seconds']:.0f} | "
            f"{run['server_tokens']:.0f} | median of {len(result['runs'][name])}, "
            f"concurrency {args.concurrency} |"
        )
    lines.append(f"| **ratio adacot / vLLM (goal >= 0.9)** | **{result['ratio']:.3f}** | | | requests/s |")
    return "\n".join(lines)


def tail_table(tail: dict[str, Any]) -> str:
    s, times = tail["settings"], tail["answer_times"]
    lines = [
        f"Heavy-tailed teacher: {s['questions']} questions, concurrency {s['concurrency']}, answer time "
        f"log-normal per question (median {s['median_s']} s, sigma {s['sigma']}, seed {s['seed']}): "
        f"sum {times['sum_s']:.1f} s, longest {times['longest_s']:.2f} s, ideal {tail['ideal_s']:.2f} s. "
        f"Perfect continuous dispatch in queue order (no overhead, simulated) needs "
        f"{tail['fifo_bound_s']:.2f} s = {tail['fifo_bound_ratio_to_ideal']:.3f} x ideal: the ideal "
        "starts the longest answers first, which no client can without knowing answer times in advance.",
        "",
        "| dispatch | job wall s | / ideal (goal <= 1.25) | teacher phase s | / ideal | mean busy slots "
        "| load 1m | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    labels = {"batches": "batches (before: chunks of 2 x concurrency)", "continuous": "continuous (now)"}
    for name in ("batches", "continuous"):
        run = tail["median"][name]
        lines.append(
            f"| {labels[name]} | {run['wall_s']:.2f} | {tail['ratio_to_ideal'][name]:.3f} | "
            f"{run['teacher_phase_s']:.2f} | {tail['teacher_phase_ratio_to_ideal'][name]:.3f} | "
            f"{run['mean_busy_slots']:.1f} of {s['concurrency']} | {run['load_1m']:.2f} | "
            f"median of {len(tail['runs'][name])} (whole DistillationJob) |"
        )
    k = tail["kill"]
    lines += [
        "",
        f"SIGKILL with {k['logged_at_kill']} of {s['questions']} records logged ({k['in_flight_at_kill']} "
        f"requests in flight), then resumed: {k['records']} records ({k['distinct_records']} distinct); "
        f"manifest usage {k['manifest_requests']} requests = sum over the records "
        f"{k['sum_of_record_requests']}; completion tokens {k['manifest_completion_tokens']} = sum over "
        f"the attempts {k['sum_of_attempt_completion_tokens']}. The server answered "
        f"{k['server_requests_before_kill']} + {k['server_requests_after_resume']} requests: "
        f"{k['spent_but_in_no_record']} were spent on answers the kill lost (in flight, or received "
        "but not yet logged); their questions were asked again and counted once.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = serving_parser(__doc__, max_tokens=256, repeats=3)
    parser.add_argument("--tail-questions", type=int, default=400)
    parser.add_argument("--tail-concurrency", type=int, default=16)
    parser.add_argument("--tail-repeats", type=int, default=2)
    parser.add_argument("--tail-seed", type=int, default=0)
    parser.add_argument("--tail-only", action="store_true", help="Only the heavy-tailed case; no files.")
    args = parser.parse_args()
    quick_settings(args)
    if args.quick:
        args.tail_questions, args.tail_repeats = 64, 1
    info = machine()
    with tempfile.TemporaryDirectory(prefix="adacot-bench-") as tmp:
        root = Path(tmp)
        result: dict[str, Any] = {}
        if not args.tail_only:
            model, _ = build_models(args.data, root)
            result = bench_serving(model, args.data, root, args, client=teacher_client)
        (root / "tail").mkdir()
        tail = measure_tail(root / "tail", args)
    text = (table(result, args) + "\n\n" if result else "") + tail_table(tail)
    print(header(info) + "\n\n" + text + f"\n\nload average at the end: {os.getloadavg()[0]:.2f}")
    if not args.quick and not args.tail_only:
        settings = {k: getattr(args, k) for k in ("questions", "max_tokens", "concurrency", "repeats")}
        info["load_after"] = os.getloadavg()[0]
        write_results("distill", info, text, {"settings": settings, **result, "heavy_tail": tail})


if __name__ == "__main__":  # vLLM may spawn processes that re-import this file
    main()
