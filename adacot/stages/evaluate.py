"""Evaluation figures over graded records: accuracy, unbiased pass@k, a before/after table, markdown.

Callers: adacot.pipelines.evaluation (which grades a model on benchmarks through the grading pipeline and
hands the records here) and tests. Pure functions over `GradedQuestion` rows; no I/O.

Definitions. A question with n samples of which c are correct contributes c / n to *accuracy* (the mean
per-sample accuracy, i.e. pass@1 averaged over the n samples) and the unbiased estimator
pass@k = 1 - C(n - c, k) / C(n, k) of Chen et al. 2021 (HumanEval) to pass@k, for every k <= n.
Undecided verdicts (timeouts, failed generations) count as not correct, as in grading. Questions whose
reference cannot be verified (gold_unparseable, bad_tests) have no decided verdict at all: they are left
out of every denominator and counted as `unverifiable`. Limits: questions with different sample counts
are allowed (pass@k uses each question's own n), but pass@k is reported only for k up to the smallest n.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from math import comb
from typing import Any

from adacot.artifacts.rows import GradedQuestion


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is
    correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def k_values(n: int) -> list[int]:
    """The k reported for n samples: 1, powers of two below n, and n itself (1, 2, 4, 8, 10 for n=10)."""
    ks = {1, n}
    k = 2
    while k < n:
        ks.add(k)
        k *= 2
    return sorted(ks)


def counts(record: GradedQuestion) -> tuple[int, int] | None:
    """(n, c) of a question, or None when none of its verdicts is decided (unverifiable reference)."""
    verdicts = [a.verdict for a in record.attempts]
    if not any(v is not None and v.correct is not None for v in verdicts):
        return None
    return len(verdicts), sum(1 for v in verdicts if v is not None and v.correct is True)


def benchmark_scores(records: Iterable[GradedQuestion]) -> dict[str, Any]:
    """Accuracy and pass@k of one model on one benchmark (see the module docstring)."""
    pairs: list[tuple[int, int]] = []
    unverifiable = 0
    for record in records:
        found = counts(record)
        if found is None:
            unverifiable += 1
        else:
            pairs.append(found)
    if not pairs:
        return {"questions": 0, "unverifiable": unverifiable, "samples": 0, "accuracy": None, "pass_at_k": {}}
    smallest = min(n for n, _ in pairs)
    return {
        "questions": len(pairs),
        "unverifiable": unverifiable,
        "samples": smallest,
        "correct_samples": sum(c for _, c in pairs),
        "accuracy": sum(c / n for n, c in pairs) / len(pairs),
        "pass_at_k": {
            str(k): sum(pass_at_k(n, c, k) for n, c in pairs) / len(pairs) for k in k_values(smallest)
        },
    }


def comparison(
    after: Mapping[str, Mapping[str, Any]], before: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per (benchmark, metric) present for both models: before, after and the change."""
    rows: list[dict[str, Any]] = []
    for name in sorted(after.keys() & before.keys()):
        new, old = after[name], before[name]
        metrics = [("accuracy", new.get("accuracy"), old.get("accuracy"))]
        metrics += [
            (f"pass@{k}", value, old.get("pass_at_k", {}).get(k))
            for k, value in new.get("pass_at_k", {}).items()
            if k != "1"
        ]
        for metric, value, base in metrics:
            if value is None or base is None:
                continue
            rows.append(
                {"benchmark": name, "metric": metric, "before": base, "after": value, "delta": value - base}
            )
    return rows


def status_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An evaluation summary as SFTJob `status.evaluation` rows: per benchmark and metric (accuracy, and
    pass@k for k > 1), the trained model's score as `after` and the base model's, if evaluated, as
    `before`."""
    models = summary.get("models", {})
    after = models.get("model", {}).get("benchmarks", {})
    before = models.get("base", {}).get("benchmarks", {})
    rows: list[dict[str, Any]] = []
    for name, scores in after.items():
        old = before.get(name, {})
        rows.append({"name": name, "metric": "accuracy", "after": scores.get("accuracy"),
                     "before": old.get("accuracy")})  # fmt: skip
        for k, value in scores.get("pass_at_k", {}).items():
            if k != "1":
                rows.append({"name": name, "metric": f"pass@{k}", "after": value,
                             "before": old.get("pass_at_k", {}).get(k)})  # fmt: skip
    return rows


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def markdown(summary: Mapping[str, Any]) -> str:
    """EVAL.md: one table per model, then the before/after comparison when there is one."""
    lines = ["# Evaluation", ""]
    for label, model in summary["models"].items():
        lines += [f"## {label}: `{model['model']}`", ""]
        lines += [
            "| benchmark | questions | samples | accuracy | pass@k | unverifiable |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for name, scores in model["benchmarks"].items():
            ks = ", ".join(f"@{k} {_pct(v)}" for k, v in scores["pass_at_k"].items())
            lines.append(
                f"| {name} | {scores['questions']} | {scores['samples']} | {_pct(scores['accuracy'])} "
                f"| {ks or '—'} | {scores['unverifiable']} |"
            )
        lines.append("")
    rows: Sequence[Mapping[str, Any]] = summary.get("comparison") or []
    if rows:
        lines += [
            "## Before / after",
            "",
            "| benchmark | metric | before | after | change |",
            "|---|---|---:|---:|---:|",
        ]
        for row in rows:
            delta = f"{100 * row['delta']:+.1f} pts"
            before, after = _pct(row["before"]), _pct(row["after"])
            lines.append(f"| {row['benchmark']} | {row['metric']} | {before} | {after} | {delta} |")
        lines.append("")
    return "\n".join(lines)
