"""What `adacot run` shows: a line per stage as it starts, and the final table of stages with their status,
time and key figures from each stage's summary (and, for failures, the reason).

Callers: adacot.cli.run. Pure formatting over `StageResult`s; the figures read only keys the pipelines'
summaries document, and a missing key is simply left out (a summary from an older version still prints).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adacot.runner.execution import FAILED, SKIPPED_DEPENDENCY, StageResult


def _pct(value: Any) -> str | None:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else None


def _levels(counts: Any) -> str | None:
    if not isinstance(counts, Mapping) or not counts:
        return None
    return "levels " + " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))


def figures(kind: str, summary: Mapping[str, Any]) -> str:
    """The few numbers that tell how a stage went, e.g. "accuracy 33.3 %, levels 0:2 5:4"."""
    parts: list[str | None]
    if kind == "GradingRun":
        accuracy = _pct(summary.get("accuracy"))
        parts = [f"{summary.get('questions')} questions" if "questions" in summary else None]
        parts += [f"accuracy {accuracy}" if accuracy else None, _levels(summary.get("level_counts"))]
        if summary.get("unverifiable"):
            parts.append(f"unverifiable {summary['unverifiable']}")
        parts.append(f"cut off {summary['truncated']}" if summary.get("truncated") else None)
        parts.append(f"PRM-truncated {summary['prm_truncated']}" if summary.get("prm_truncated") else None)
    elif kind == "DifficultyBank":
        parts = [f"{summary.get('questions')} questions" if "questions" in summary else None]
        parts += [_levels(summary.get("level_counts"))]
        removed = (summary.get("duplicates_removed") or 0) + (summary.get("contaminated_removed") or 0)
        parts.append(f"removed {removed}" if removed else None)
    elif kind == "DistillationJob":
        kept, asked = summary.get("kept"), summary.get("questions")
        parts = [f"kept {kept} of {asked}" if kept is not None else None]
        rate = _pct(summary.get("acceptance_rate"))
        parts.append(f"acceptance {rate}" if rate else None)
    else:
        parts = [_sft_figures(summary)]
    return ", ".join(p for p in parts if p)


def _sft_figures(summary: Mapping[str, Any]) -> str | None:
    parts: list[str | None] = []
    loss, first = summary.get("loss"), summary.get("first_loss")
    if isinstance(loss, (int, float)):
        parts.append(
            f"loss {first:.3f} -> {loss:.3f}" if isinstance(first, (int, float)) else f"loss {loss:.3f}"
        )
    parts.append(f"{summary['global_step']} steps" if summary.get("global_step") else None)
    evaluation = summary.get("evaluation")
    if isinstance(evaluation, Mapping):
        parts.append(_eval_figures(evaluation))
    return ", ".join(p for p in parts if p) or None


def _eval_figures(evaluation: Mapping[str, Any]) -> str | None:
    """accuracy per benchmark, "before -> after" when the base model was evaluated too."""
    models = evaluation.get("models", {})
    after = models.get("model", {}).get("benchmarks", {})
    before = models.get("base", {}).get("benchmarks", {})
    parts = []
    for name, scores in after.items():
        new, old = _pct(scores.get("accuracy")), _pct(before.get(name, {}).get("accuracy"))
        parts.append(f"{name} {old} -> {new}" if old else f"{name} {new}")
    return ", ".join(parts) or None


def table(results: Sequence[StageResult]) -> str:
    """The final table: STAGE, STATUS, TIME, FIGURES / REASON; one row per stage in run order."""
    header = ("STAGE", "STATUS", "TIME", "FIGURES / REASON")
    rows = [header]
    for result in results:
        seconds = f"{result.seconds:.1f}s" if result.seconds is not None else "-"
        detail = result.reason if result.status in (FAILED, SKIPPED_DEPENDENCY) else None
        text = detail or figures(result.stage.resource.kind, result.summary) or "-"
        rows.append((result.stage.label, result.status, seconds, text.splitlines()[0] if text else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


def failures(results: Sequence[StageResult]) -> list[str]:
    """Full reasons of failed stages (the table shows only their first line)."""
    return [f"{r.stage.label} failed: {r.reason}" for r in results if r.status == FAILED]
