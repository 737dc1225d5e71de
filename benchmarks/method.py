"""The method's own claim, measured: arms A/U/B/C/P over seeds (issue 14), on CPU.

    python benchmarks/method.py                 # the full experiment (models reused from --workdir)
    python benchmarks/method.py --split eval    # the same, every SFT evaluated on the eval set (tuning)
    python benchmarks/method.py --seeds 0 1 2 3 --arms A U

Runs adacot.demo.experiment (train the student, a stronger student, the teacher and the PRM-Grader;
grade; distil every arm and seed; fine-tune and evaluate each through `adacot run`), then writes
benchmarks/results/method.json (`arms.<X>.test_accuracy` seed -> accuracy, `prm_step_auc`,
`paired.<A-U|A-B|A-C|A-P>` with mean and ci95), method.md and method.png (accuracy per arm, every seed
and mean ± sd). The arms are described in adacot.demo.arms; the statistics in adacot.demo.stats.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench_support import ROOT, machine, write_results

from adacot.artifacts.rows import GradedQuestion
from adacot.artifacts.store import read_records
from adacot.demo import arms, experiment, spec, stats
from adacot.demo.arms import ARMS, ExperimentSize
from adacot.demo.pretrain import PretrainPlan
from adacot.demo.prm import PrmPlan, grading_auc

FULL = ExperimentSize(
    demo=spec.DemoSize(
        pool=1500, eval=500, test=500, distill=200, k=4, sft_epochs=30, grading_engine="vllm",
        student=PretrainPlan(steps=1000, seed=1, learning_rate=1e-3),
        teacher=PretrainPlan(steps=1500, seed=2), prm=PrmPlan(questions=2000, steps=400),
    ),
    strong=PretrainPlan(steps=2000, seed=1, learning_rate=1e-3),
    seeds=(0, 1, 2),
)  # fmt: skip
QUICK = ExperimentSize(
    demo=spec.DemoSize(
        pool=150, eval=80, test=80, distill=30, k=4, sft_epochs=3, grading_engine="vllm",
        student=PretrainPlan(steps=300, seed=1, learning_rate=1e-3),
        teacher=PretrainPlan(steps=300, seed=2), prm=PrmPlan(questions=300, steps=40, held_out=100),
    ),
    strong=PretrainPlan(steps=400, seed=1, learning_rate=1e-3),
    seeds=(0, 1),
)  # fmt: skip
PAIRS = ("A-U", "A-B", "A-C", "A-P")


def main() -> None:
    args = _parser().parse_args()
    base = QUICK if args.quick else FULL
    size = ExperimentSize(demo=base.demo, strong=base.strong, seeds=tuple(args.seeds or base.seeds))
    info = machine()
    started = time.monotonic()
    found = experiment.run_experiment(args.workdir, size, chosen=args.arms, split=args.split)
    payload = results(found, size, args.arms, args.split, args.workdir)
    payload["seconds"] = round(time.monotonic() - started, 1)
    name = ("method" if args.split == "test" else f"method-{args.split}") + ("-quick" if args.quick else "")
    figure = ROOT / "benchmarks" / "results" / f"{name}.png"
    _figure(payload, figure)
    text = markdown(payload, figure.name)
    print(text)
    write_results(name, info, text, payload)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".adacot" / "method")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 1 2 (quick: 0 1)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the machinery, proves nothing"
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--split", choices=("test", "eval"), default="test", help="where SFT is evaluated")
    return parser


def results(
    found: dict[str, Any], size: ExperimentSize, chosen: list[str], split: str, workdir: Path
) -> dict[str, Any]:
    """The results file's payload (see the module docstring)."""
    summaries, suffix = found["summaries"], "-sft" if split == "test" else "-sft-eval"
    accuracy = f"{split}_accuracy"
    per_arm: dict[str, Any] = {}
    for arm in chosen:
        jobs = {str(s): arms.job_name(arm, s) for s in size.seeds}
        scores = {s: _accuracy(summaries.get(job + suffix, {}), "model", split) for s, job in jobs.items()}
        measured = {s: v for s, v in scores.items() if v is not None}
        per_arm[arm] = {
            "description": ARMS[arm],
            accuracy: measured,
            **({"summary": stats.spread(measured)} if measured else {}),
            "distribution": {s: _shares(summaries.get(job, {})) for s, job in jobs.items()},
            "kept": {s: summaries.get(job, {}).get("kept") for s, job in jobs.items()},
        }
    first = arms.job_name(chosen[0], size.seeds[0])
    rerun = _accuracy(summaries.get(f"{first}-rerun{suffix}", {}), "model", split)
    eval_rows = read_records(workdir / "runs" / "default" / "GradingRun" / "eval", GradedQuestion)
    return {
        "split": split,
        "settings": _settings(size),
        "base_accuracy": _accuracy(summaries.get(first + suffix, {}), "base", split),
        "arms": per_arm,
        "paired": _paired(per_arm, accuracy),
        "prm_step_auc": found["prm"]["held_out_step_auc"],  # held-out sampled traces
        "prm_step_auc_eval_grading": grading_auc(eval_rows),
        "levels": {
            "pool_prm_bank": summaries.get("bank", {}).get("level_counts"),
            "pool_pass_rate_bank": summaries.get("bank-pr", {}).get("level_counts"),
            "eval_prm": summaries.get("eval", {}).get("level_counts"),
            "eval_pass_rate": summaries.get("eval-pr", {}).get("level_counts"),
            "cut_points": summaries.get("eval", {}).get("cut_points"),
            "strong_student_on_these_cuts": found["strong_table"],
        },
        "solved": {n: summaries.get(n, {}).get("accuracy") for n in ("pool", "eval", "eval-strong")},
        "determinism": {
            "job": first,
            "first": per_arm[chosen[0]][accuracy].get(str(size.seeds[0])),
            "rerun": rerun,
        },
        "failed": found["failed"],
        "models": {**found["pretrain"], "prm": found["prm"]},
    }


def _settings(size: ExperimentSize) -> dict[str, Any]:
    d = size.demo
    return {"pool": d.pool, "eval": d.eval, "test": d.test, "N": d.distill, "k": d.k,
            "sft_epochs": d.sft_epochs, "seeds": list(size.seeds)}  # fmt: skip


def _accuracy(summary: dict[str, Any], model: str, split: str) -> float | None:
    value = (summary.get("evaluation") or {}).get("models", {}).get(model, {}).get("benchmarks", {})
    found = value.get(split.removesuffix(".jsonl"), {}).get("accuracy")
    return float(found) if isinstance(found, (int, float)) else None


def _shares(summary: dict[str, Any]) -> dict[str, Any]:
    return {"target": summary.get("target_distribution"), "achieved": summary.get("sampled_distribution")}


def _paired(per_arm: dict[str, Any], accuracy: str) -> dict[str, Any]:
    out = {}
    for pair in PAIRS:
        x, y = pair.split("-")
        if x in per_arm and y in per_arm and per_arm[x][accuracy] and per_arm[y][accuracy]:
            out[pair] = stats.paired(per_arm[x][accuracy], per_arm[y][accuracy])
            out[pair]["verdict"] = stats.verdict(pair, out[pair])
    return out


def markdown(payload: dict[str, Any], figure: str) -> str:
    """The per-arm table, the paired differences and the PRM's figures."""
    accuracy = f"{payload['split']}_accuracy"
    lines = [
        f"Student before SFT: {_pct(payload['base_accuracy'])} on the {payload['split']} set "
        f"({payload['settings'][payload['split']]} questions); N = {payload['settings']['N']} per arm.",
        "",
        "| arm | what | per seed | mean ± sd |",
        "| --- | --- | --- | --- |",
    ]
    for arm, found in payload["arms"].items():
        seeds = ", ".join(f"{s}: {_pct(v)}" for s, v in found[accuracy].items())
        summary = found.get("summary")
        mean = f"{_pct(summary['mean'])} ± {100 * summary['sd']:.1f}" if summary else "n/a"
        lines.append(f"| {arm} | {found['description']} | {seeds} | {mean} |")
    lines += ["", *[f"- {p['verdict']}" for p in payload["paired"].values()], ""]
    lines.append(
        f"PRM step-level AUC: {payload['prm_step_auc']:.3f} on held-out sampled traces, "
        f"{payload['prm_step_auc_eval_grading']:.3f} on the eval grading's scored steps."
    )
    det = payload["determinism"]
    lines.append(
        f"Run to run ({det['job']}, fine-tuned twice): {_pct(det['first'])} and {_pct(det['rerun'])}."
    )
    lines.append(f"\n![accuracy per arm]({figure})")
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "n/a"


def _figure(payload: dict[str, Any], path: Path) -> None:
    """Accuracy per arm: every seed as a dot, the mean with a ±1 sd error bar, the base as a line."""
    from adacot.plots.canvas import png

    accuracy = f"{payload['split']}_accuracy"
    with png(path, f"SFT accuracy per arm ({payload['split']} set)", 800, 450) as axes:
        for i, found in enumerate(payload["arms"].values()):
            values = [100 * v for v in found[accuracy].values()]
            if not values:
                continue
            axes.scatter([i] * len(values), values, color="grey", s=14, zorder=3)
            summary = found["summary"]
            axes.errorbar(i, 100 * summary["mean"], yerr=100 * summary["sd"], fmt="o", color="C0", capsize=6)
        if payload["base_accuracy"] is not None:
            axes.axhline(100 * payload["base_accuracy"], color="C3", linestyle="--", label="before SFT")
            axes.legend(loc="lower right")
        axes.set_xticks(range(len(payload["arms"])), list(payload["arms"]))
        axes.set_ylabel("accuracy (%)")


if __name__ == "__main__":
    main()
