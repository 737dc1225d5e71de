"""The DistillationJob's reports and extra formats: summary.json figures, the shares PNG, LLaMA-Factory files.

Callers: adacot.pipelines.distillation_job at merge time (after records/, traces/ and data/ are written).

Figures (`summarise`, streamed over the merged records):
- acceptance: questions with at least one kept CoT / questions distilled, overall and per level;
- tokens per kept sample (teacher completion tokens, mean) and attempts per kept sample (teacher samples
  generated / samples kept: the cost of one training example), rounds per accepted question;
- level shares: the target distribution, the drawn sample's, and the kept questions' (what the student
  will be trained on), drawn side by side in distribution.png; the shortfall per level and the sampler's
  messages; contaminated questions removed; every sample outcome counted; generator usage totals.

Limits: the per-level acceptance uses the bank's level of each question (for the base model), not any
difficulty the teacher showed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adacot.api.distillation_job import DistillationJob
from adacot.artifacts.manifest import atomic_write_bytes, read_manifest
from adacot.artifacts.rows import DistilledQuestion, SftExample
from adacot.artifacts.store import read_records
from adacot.plots.distribution import write_distribution_chart
from adacot.stages.exports import EXPORT_FILES, dataset_info, export_row

LEVELS = range(6)
CHART_NAME = "distribution.png"


def write_exports(root: Path, name: str, formats: Sequence[str]) -> None:
    """exports/<format>.jsonl for each format asked for, plus LLaMA-Factory's dataset_info.json."""
    if not formats:
        return
    folder = root / "exports"
    folder.mkdir(exist_ok=True)
    for fmt in formats:
        lines = (json.dumps(export_row(fmt, ex), ensure_ascii=False) + "\n" for ex in _examples(root))
        atomic_write_bytes(folder / EXPORT_FILES[fmt], "".join(lines).encode())
    info = json.dumps(dataset_info(name, formats), indent=2) + "\n"
    atomic_write_bytes(folder / "dataset_info.json", info.encode())


def _examples(root: Path) -> Any:
    from adacot.artifacts.jsonio import iter_records

    for path in sorted((root / "data").glob("part-*.jsonl")):
        yield from iter_records(path, SftExample)


def _shares(counts: Counter[int]) -> dict[str, float]:
    total = sum(counts.values())
    return {str(lv): (counts[lv] / total if total else 0.0) for lv in LEVELS}


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


class _Tally:
    """Running figures over the merged records."""

    def __init__(self) -> None:
        self.questions: Counter[int] = Counter()
        self.accepted: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.samples = self.kept_samples = self.kept_tokens = self.accepted_rounds = 0

    def add(self, record: DistilledQuestion) -> None:
        level = record.level if record.level is not None else -1
        self.questions[level] += 1
        self.samples += len(record.attempts)
        self.outcomes.update(record.outcomes)
        if record.accepted:
            self.accepted[level] += 1
            self.accepted_rounds += record.rounds
            self.kept_samples += len(record.kept)
            self.kept_tokens += sum(t.completion_tokens or 0 for t in record.kept)

    def by_level(self) -> dict[str, dict[str, Any]]:
        return {
            str(lv): {
                "questions": self.questions[lv],
                "accepted": self.accepted[lv],
                "acceptance_rate": _mean(self.accepted[lv], self.questions[lv]),
            }
            for lv in LEVELS
        }


def summarise(resource: DistillationJob, root: Path) -> dict[str, Any]:
    """The job's figures (see the module docstring); draws distribution.png on the way."""
    tally = _Tally()
    for record in read_records(root / "records", DistilledQuestion):
        tally.add(record)
    sampler = json.loads((root / "sample.json").read_text())
    report = sampler["sampler"]
    target = {lv: float(s) for lv, s in report["distribution"]["shares"].items()}
    sampled = Counter({int(lv): t["taken"] for lv, t in report["levels"].items()})
    questions, accepted = sum(tally.questions.values()), sum(tally.accepted.values())
    summary = {
        "complete": True,
        "kind": resource.KIND,
        "name": resource.metadata.name,
        "sampled": report["size"],
        "contaminated": sampler["contaminated"],
        "questions": questions,
        "kept": accepted,
        "kept_samples": tally.kept_samples,
        "acceptance_rate": _mean(accepted, questions),
        "acceptance_by_level": tally.by_level(),
        "tokens_per_kept_sample": _mean(tally.kept_tokens, tally.kept_samples),
        "attempts_per_kept_sample": _mean(tally.samples, tally.kept_samples),
        "rounds_per_kept_question": _mean(tally.accepted_rounds, accepted),
        "target_distribution": target,
        "sampled_distribution": _shares(sampled),
        "achieved_distribution": _shares(tally.accepted),
        "shortfall": {lv: max(0, t["target"] - t["available"]) for lv, t in report["levels"].items()},
        "sampler_messages": report["messages"],
        "outcomes": dict(sorted(tally.outcomes.items())),
        "usage": read_manifest(root / "records").metrics.get("usage", {}),
    }
    _chart(root, summary)
    return summary


def _chart(root: Path, summary: dict[str, Any]) -> None:
    series = {
        name: {int(lv): share for lv, share in summary[key].items()}
        for name, key in (
            ("target", "target_distribution"),
            ("sampled", "sampled_distribution"),
            ("kept", "achieved_distribution"),
        )
    }
    title = f"{summary['name']}: {summary['kept']} of {summary['questions']} questions kept"
    write_distribution_chart(series, root / CHART_NAME, title=title)
