"""Reading the final answer of long reasoning traces: adacot's math verifier against hand labels.

    python benchmarks/answers.py [--data benchmarks/data/answer_traces.jsonl]

Each line of the data file is one trace with its reference answer and a hand label: would a careful
grader mark the trace's *final* answer correct (a number that only appears in the reasoning, a trace cut
off inside its reasoning, an empty `\\boxed{}` or a bare option letter are not answers). `origin` says
whether the trace is a real reasoning-model output (its `source` names where it was found; `elided`
marks traces whose middle reasoning was shortened, the end of the reasoning and the answer kept) or a
hard case constructed in the same shapes.

Three checkers read the same text:
  adacot             `adacot.verify.math.verify_math(trace, reference)` (correct only when True)
  math-verify        `math_verify.verify(parse(reference), parse(trace))`, the library called directly
  math-verify ($ref$)  the same with the reference wrapped in `$...$`, as LaTeX-only references need
Agreement is the share of traces where the checker's verdict equals the hand label, per category,
per origin and overall. Prints a markdown table with the machine and versions first and writes
benchmarks/results/answers.json and answers.md.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench_support import ROOT, header, machine, write_results

DATA = ROOT / "benchmarks" / "data" / "answer_traces.jsonl"
PACKAGES = ("adacot", "math-verify", "latex2sympy2_extended", "sympy")
CHECKERS = ("adacot", "math-verify", "math-verify ($ref$)")
NOTE = "Constructed traces were written with the extraction rule (regression cases); real ones test it."


def load(path: Path) -> list[dict[str, Any]]:
    """The labelled traces; a line missing a field is an error naming the line."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for number, row in enumerate(rows, 1):
        missing = {"id", "origin", "category", "reference", "label", "trace"} - row.keys()
        if missing:
            raise SystemExit(f"{path}:{number}: missing {sorted(missing)}")
    return rows


def _adacot(trace: str, reference: str) -> tuple[bool, str | None, str]:
    from adacot.verify.math import verify_math

    verdict = verify_math(trace, reference, timeout_s=10.0)
    return verdict.correct is True, verdict.extracted, f"{verdict.reason}: {verdict.detail}"


def _math_verify(wrap: bool) -> Callable[[str, str], tuple[bool, str | None, str]]:
    from math_verify import parse, verify

    def check(trace: str, reference: str) -> tuple[bool, str | None, str]:
        try:
            answer = parse(trace)
            same = bool(verify(parse(f"${reference}$" if wrap else reference), answer))
        except Exception as exc:  # a library error on one trace is a verdict of "not correct"
            return False, None, f"error: {type(exc).__name__}"
        return same, str(answer[-1]) if answer else None, "parsed"

    return check


def judge(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every checker's verdict on every trace, with what it extracted."""
    checkers = {
        "adacot": _adacot,
        "math-verify": _math_verify(False),
        "math-verify ($ref$)": _math_verify(True),
    }
    out = []
    for row in rows:
        result = {k: row[k] for k in ("id", "origin", "category", "reference", "label")}
        for name, check in checkers.items():
            correct, extracted, note = check(row["trace"], row["reference"])
            result[name] = {"correct": correct, "agrees": correct == row["label"], "extracted": extracted,
                            "note": note}  # fmt: skip
        out.append(result)
    return out


def _share(results: list[dict[str, Any]], checker: str) -> float:
    return sum(bool(r[checker]["agrees"]) for r in results) / len(results)


def summary(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Agreement with the hand labels by category, by origin and overall."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for key in (f"category:{r['category']}", f"origin:{r['origin']}", "overall"):
            groups.setdefault(key, []).append(r)
    return {
        key: {"n": len(group), **{c: _share(group, c) for c in CHECKERS}} for key, group in groups.items()
    }


def table(summ: dict[str, dict[str, Any]], results: list[dict[str, Any]]) -> str:
    lines = ["| group | traces | " + " | ".join(f"{c} agreement" for c in CHECKERS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in CHECKERS) + " |"]  # fmt: skip
    order = sorted(k for k in summ if k.startswith("category:")) + sorted(
        k for k in summ if k.startswith("origin:")
    )
    for key in [*order, "overall"]:
        row = summ[key]
        cells = " | ".join(f"{row[c]:.0%} ({round(row[c] * row['n'])}/{row['n']})" for c in CHECKERS)
        name = f"**{key}**" if key == "overall" else key
        lines.append(f"| {name} | {row['n']} | {cells} |")
    lines += ["", NOTE, "", "Traces where adacot disagrees with the hand label:", ""]
    misses = [r for r in results if not r["adacot"]["agrees"]]
    lines += [
        f"- `{r['id']}` ({r['category']}): label {r['label']}, adacot {r['adacot']['note']}" for r in misses
    ]
    return "\n".join(lines if misses else [*lines, "- none"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="Labelled traces (JSON lines).")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # its parse warnings are per-trace noise
    rows = load(args.data)
    info = machine(PACKAGES)
    results = judge(rows)
    summ = summary(results)
    text = table(summ, results)
    print(header(info) + "\n\n" + text)
    payload = {"data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
               "summary": summ, "results": results}  # fmt: skip
    write_results("answers", info, text, payload)


if __name__ == "__main__":
    main()
