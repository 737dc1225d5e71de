"""Teacher client throughput: the distillation stage's requests against vLLM's serving benchmark client.

    python benchmarks/distill.py [--data ../shared/data] [--questions 200] [--max-tokens 256]
                                 [--concurrency 32] [--repeats 3] [--quick]

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
benchmarks/serving.py. Prints a markdown table; writes benchmarks/results/distill.json and .md (not
with --quick). Timings are wall-clock on whatever else the machine runs; compare ratios of one run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bench_support import header, machine, write_results
from serving import adacot_client, bench_serving, build_models, rate
from serving import parser as serving_parser
from serving import quick as quick_settings


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


def main() -> None:
    parser = serving_parser(__doc__, max_tokens=256, repeats=3)
    args = parser.parse_args()
    quick_settings(args)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="adacot-bench-") as tmp:
        root = Path(tmp)
        model, _ = build_models(args.data, root)
        result = bench_serving(model, args.data, root, args, client=teacher_client)
    text = table(result, args)
    print(header(info) + "\n\n" + text)
    if not args.quick:
        settings = {k: getattr(args, k) for k in ("questions", "max_tokens", "concurrency", "repeats")}
        write_results("distill", info, text, {"settings": settings, **result})


if __name__ == "__main__":  # vLLM may spawn processes that re-import this file
    main()
