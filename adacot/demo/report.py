"""The demo's report: WORKDIR/report/REPORT.md, its PNGs and report.json, from the stages' summaries.

Callers: adacot.demo.pipeline. Reads only what the stages wrote (summary.json files, the SFT loss rows,
the trained models' pretrain.json), so it can be rebuilt from a finished workdir. Charts reuse
adacot.plots (level histogram, target vs achieved shares, loss curve); the accuracy chart is drawn here.

The ablation's verdict is computed from the measured accuracies, never written in advance: whichever way
it goes at this scale (including no difference) is what the report says.

Limits: a stage that did not complete is listed as missing and its charts are left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adacot import runner
from adacot.demo.pretrain import DONE_NAME
from adacot.demo.spec import DemoSize
from adacot.plots.distribution import write_distribution_chart
from adacot.plots.histogram import write_level_histogram
from adacot.plots.loss import write_loss_curve

JOBS = ("adaptive", "ablation")
_DPI = 100


def write_report(
    workdir: Path, size: DemoSize, results: list[runner.StageResult], *, echo: Callable[[str], None] = print
) -> Path:
    """Write the report (see the module docstring); returns REPORT.md's path and prints its summary."""
    out = workdir / "report"
    out.mkdir(parents=True, exist_ok=True)
    facts = gather(workdir, results)
    images = _charts(facts, out)
    markdown = _markdown(facts, size, images)
    (out / "REPORT.md").write_text(markdown)
    (out / "report.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
    echo(_summary_table(facts))
    echo(facts["verdict"])
    return out / "REPORT.md"


def gather(workdir: Path, results: list[runner.StageResult]) -> dict[str, Any]:
    """Every figure the report shows, keyed by stage name."""
    summaries = {r.stage.resource.metadata.name: r.summary for r in results}  # skipped stages' too
    stages = {r.stage.resource.metadata.name: r for r in results}
    facts: dict[str, Any] = {
        "stages": {name: {"status": r.status, "reason": r.reason} for name, r in stages.items()},
        "pretrain": {m: _json(workdir / "models" / m / DONE_NAME) for m in ("student", "teacher")},
        "pool": summaries.get("pool", {}),
        "eval": summaries.get("eval", {}),
        "bank": summaries.get("bank", {}),
    }
    for job in JOBS:
        facts[job] = summaries.get(job, {})
        sft = summaries.get(f"{job}-sft", {})
        facts[f"{job}-sft"] = {k: v for k, v in sft.items() if k != "evaluation"}
        facts[f"{job}-sft"]["losses"] = (
            _losses(stages[f"{job}-sft"].stage.out_dir) if f"{job}-sft" in stages else []
        )
        facts[f"{job}-accuracy"] = _accuracy(sft.get("evaluation"), "model")
        if job == "adaptive":
            facts["base-accuracy"] = _accuracy(sft.get("evaluation"), "base")
            facts["test-questions"] = _benchmark(sft.get("evaluation"), "base").get("questions")
    facts["verdict"] = verdict(facts)
    return facts


def _json(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text()) if path.is_file() else {}
    return loaded if isinstance(loaded, dict) else {}


def _losses(sft_dir: Path) -> list[tuple[int, float]]:
    rows = []
    for part in sorted((sft_dir / "data").glob("part-*.jsonl")):
        rows += [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    return [(int(r["step"]), float(r["loss"])) for r in rows]


def _benchmark(evaluation: Any, label: str) -> Mapping[str, Any]:
    """The test-set figures of one model in an SFTJob's evaluation summary ({} when absent)."""
    if not isinstance(evaluation, Mapping):
        return {}
    found = evaluation.get("models", {}).get(label, {}).get("benchmarks", {}).get("test", {})
    return found if isinstance(found, Mapping) else {}


def _accuracy(evaluation: Any, label: str) -> float | None:
    value = _benchmark(evaluation, label).get("accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def verdict(facts: Mapping[str, Any]) -> str:
    """One sentence on the ablation, from the measured test accuracies."""
    base, adaptive, ablation = (
        facts.get("base-accuracy"),
        facts.get("adaptive-accuracy"),
        facts.get("ablation-accuracy"),
    )
    if adaptive is None or ablation is None or base is None:
        return "Ablation: not measured (a stage did not complete; see the stage table)."
    gap = adaptive - ablation
    if abs(gap) < 1e-9:
        outcome = "no difference between them"
    elif gap > 0:
        outcome = f"the adaptive set did better by {100 * gap:.1f} points"
    else:
        outcome = (
            f"the uniform set did better by {100 * -gap:.1f} points (the opposite of the paper's finding)"
        )
    questions = facts.get("test-questions") or 0
    scale = (
        f" One of the {questions} test questions is worth {100 / questions:.1f} points." if questions else ""
    )
    return (
        f"Ablation: test accuracy {_pct(base)} before SFT; {_pct(adaptive)} after SFT on the P_eval sample, "
        f"{_pct(ablation)} after SFT on the uniform sample of the same size: {outcome}.{scale}"
    )


def _pct(value: Any) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "n/a"


# ---------------------------------------------------------------------------------------------- charts


def _charts(facts: Mapping[str, Any], out: Path) -> dict[str, str]:
    """Draw what the facts allow; returns caption -> file name."""
    images: dict[str, str] = {}
    levels = {int(k): v for k, v in facts["bank"].get("level_counts", {}).items()}
    if levels:
        write_level_histogram(
            levels, out / "levels.png", title="The student's difficulty levels (question pool)"
        )
        images["Level histogram of the bank"] = "levels.png"
    for job in JOBS:
        summary = facts[job]
        if "target_distribution" in summary:
            series = {
                "target": _shares(summary["target_distribution"]),
                "kept (achieved)": _shares(summary["achieved_distribution"]),
            }
            write_distribution_chart(
                series, out / f"distribution-{job}.png", title=f"{job}: target vs achieved"
            )
            images[f"Target vs achieved distribution ({job})"] = f"distribution-{job}.png"
    rates = {job: _rates(facts[job]) for job in JOBS if "acceptance_by_level" in facts[job]}
    if rates:
        write_distribution_chart(
            rates, out / "acceptance.png", title="Teacher acceptance rate per level (verified / sampled)"
        )
        images["Acceptance per level"] = "acceptance.png"
    for job in JOBS:
        losses = facts[f"{job}-sft"]["losses"]
        if losses:
            steps, values = zip(*losses, strict=True)
            write_loss_curve(
                steps, values, out / f"loss-{job}.png", title=f"SFT of the student on the {job} set"
            )
            images[f"SFT loss ({job})"] = f"loss-{job}.png"
    accuracies = {"before SFT": facts.get("base-accuracy")} | {
        f"after SFT ({job})": facts.get(f"{job}-accuracy") for job in JOBS
    }
    if any(v is not None for v in accuracies.values()):
        write_accuracy_chart({k: v for k, v in accuracies.items() if v is not None}, out / "accuracy.png")
        images["Test accuracy before and after"] = "accuracy.png"
    return images


def _shares(table: Mapping[str, Any]) -> dict[int, float]:
    return {int(k): float(v) for k, v in table.items()}


def _rates(summary: Mapping[str, Any]) -> dict[int, float]:
    return {int(k): float(v.get("acceptance_rate") or 0.0) for k, v in summary["acceptance_by_level"].items()}


def write_accuracy_chart(values: Mapping[str, float], path: Path) -> Path:
    """Bars of test accuracy (%) per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=_DPI)
    try:
        bars = axes.bar(
            list(values), [100 * v for v in values.values()], color=["#8c8c8c", "#4c72b0", "#dd8452"]
        )
        axes.bar_label(bars, labels=[f"{100 * v:.1f}" for v in values.values()])
        axes.set_ylabel("test accuracy (%)")
        axes.set_ylim(0, 100)
        axes.set_title("The student on the held-out test sums", fontsize=10)
        figure.savefig(path, format="png", dpi=_DPI)
    finally:
        plt.close(figure)
    return path


# -------------------------------------------------------------------------------------------- markdown


def _summary_table(facts: Mapping[str, Any]) -> str:
    rows = [("figure", "value")]
    rows.append(("student accuracy on the pool (solved every sample)", _pct(facts["pool"].get("accuracy"))))
    rows.append(("bank levels 0..5", _counts(facts["bank"].get("level_counts"))))
    for job in JOBS:
        summary = facts[job]
        rows.append(
            (f"{job}: sampled / kept", f"{summary.get('sampled', 'n/a')} / {summary.get('kept', 'n/a')}")
        )
    rows.append(("test accuracy before SFT", _pct(facts.get("base-accuracy"))))
    for job in JOBS:
        rows.append((f"test accuracy after SFT ({job})", _pct(facts.get(f"{job}-accuracy"))))
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


def _counts(counts: Any) -> str:
    if not isinstance(counts, Mapping):
        return "n/a"
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))


def _markdown(facts: Mapping[str, Any], size: DemoSize, images: Mapping[str, str]) -> str:
    student, teacher = facts["pretrain"]["student"], facts["pretrain"]["teacher"]
    lines = [
        "# adacot demo report",
        "",
        "A student, a teacher and a PRM were trained from scratch on sums of 1- to 3-digit numbers: the "
        "student writes one line per partial result, then its answer "
        f"({student.get('steps')} steps, final loss {student.get('final_loss')}), the "
        f"teacher writes column sums with carries ({teacher.get('steps')} steps, final loss "
        f"{teacher.get('final_loss')}). The student was graded on {size.pool} pool and {size.eval} eval "
        f"questions (k = {size.k}, graded by the trained PRM: unsolved questions get levels 1..5 from "
        f"their min step score); {size.distill} questions were drawn from the bank "
        "twice, "
        "by the student's own P_eval (adaptive) and uniformly over levels 0..5 (ablation), the teacher "
        "(served by vLLM) wrote verified chains of thought, and the student was fine-tuned on each set and "
        f"tested on {size.test} held-out sums.",
        "",
        "## Stages",
        "",
        "| stage | status | note |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {n} | {s['status']} | {s['reason'] or ''} |" for n, s in facts["stages"].items()]
    lines += ["", "## Figures", "", "```", _summary_table(facts), "```", "", facts["verdict"], ""]
    lines += ["## Acceptance per level", "", "| level | " + " | ".join(JOBS) + " |", "| --- | --- | --- |"]
    for level in range(6):
        cells = [_acceptance(facts[job], level) for job in JOBS]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    lines.append("")
    for caption, name in images.items():
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    return "\n".join(lines)


def _acceptance(summary: Mapping[str, Any], level: int) -> str:
    entry = summary.get("acceptance_by_level", {}).get(str(level))
    if not isinstance(entry, Mapping) or not entry.get("questions"):
        return "-"
    return f"{entry['accepted']}/{entry['questions']}"
