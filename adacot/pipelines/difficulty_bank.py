"""`run_difficulty_bank`: read graded-question sources, build the bank, write its artifact and reports.

Callers: `adacot stage difficultybank` (a pod), `adacot bank`, `adacot run`. Sources are a GradingRun's
artifact directory (its MANIFEST.json names the model) or a JSONL/Parquet file of GradedQuestion rows
(model unknown: the bank's spec.model is used). `gradingRunRef` sources, GradingRuns whose bankRef
names the bank and the `levels.cutPointsFrom` run are resolved by the caller into directories (`runs`):
the core library does not know where a cluster keeps artifacts. The cut-point run is read for its cut
points only (adacot.pipelines.level_scale), unless it is also a source or its bankRef names the bank;
it must grade the sources' model with their grader, and every unsolved entry is re-levelled with its cut
points, which summary.json, MANIFEST.json and the status record (`cut_points`, `cut_points_from`).

Output (an artifact directory): data/part-*.jsonl of BankEntry, removed/contaminated.jsonl (each
removal with the matching benchmark question and a shared n-gram), removed/duplicates.jsonl,
histogram.png, SUMMARY.md, summary.json, MANIFEST.json, _SUCCESS; the termination message. The stage is
cheap and deterministic, so it has no per-record resume: an interrupted run is simply run again (shards
already written with the same content are kept by ArtifactDir).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adacot.api.common import DatasetSpec, ModelSpec
from adacot.api.difficulty_bank import DifficultyBank
from adacot.artifacts.datasets import read_rows
from adacot.artifacts.jsonio import iter_records
from adacot.artifacts.manifest import Manifest, atomic_write_bytes, read_manifest
from adacot.artifacts.rows import BankEntry, GradedQuestion, question_id
from adacot.artifacts.store import ArtifactDir, is_complete, read_records
from adacot.artifacts.summary import read_summary, write_summary
from adacot.pipelines.level_scale import (
    CutPointRun,
    artifact_rule,
    check_cut_point_run,
    cut_point_run,
    feeds_bank,
)
from adacot.pipelines.termination import write_termination_message
from adacot.plots.histogram import write_level_histogram
from adacot.stages.bank import BankResult, Duplicate, SourceRows, build_bank
from adacot.stages.decontaminate import BenchmarkIndex, BenchmarkItem, Contamination

RECORDS_PER_FILE = 10_000


def read_source(path: str | Path) -> SourceRows:
    """The graded questions of one source and the model it names (None for plain files)."""
    where = Path(path)
    if where.is_dir():
        manifest = read_manifest(where) if is_complete(where) else None
        rows = list(read_records(where, GradedQuestion))  # raises clearly for an incomplete artifact
        model = _model_of(manifest.spec) if manifest is not None else None
        return SourceRows(origin=str(where), model=model, rows=rows, rule=artifact_rule(where))
    if not where.is_file():
        raise FileNotFoundError(f"bank source {where} does not exist")
    return SourceRows(origin=str(where), model=None, rows=list(iter_records(where, GradedQuestion)))


def _model_of(spec: Mapping[str, Any]) -> str | None:
    model = spec.get("model")
    return ModelSpec.model_validate(model).identity() if isinstance(model, dict) else None


def resolve_sources(
    resource: DifficultyBank, runs: Mapping[str, str | Path], base_dir: str | Path | None
) -> list[Path]:
    """Source paths in spec order, then the remaining `runs` (GradingRuns feeding the bank by bankRef;
    the levels.cutPointsFrom run only when its bankRef names this bank)."""
    spec = resource.spec
    cut_run = spec.levels.cut_points_from.name if spec.levels is not None else None
    paths: list[Path] = []
    used: set[str] = set()
    for source in spec.sources:
        if source.grading_run_ref is not None:
            name = source.grading_run_ref.name
            if name not in runs:
                raise ValueError(f"sources[]: gradingRunRef {name!r} has no known output directory")
            paths.append(Path(runs[name]))
            used.add(name)
        else:
            assert source.path is not None
            paths.append(Path(source.path) if base_dir is None else Path(base_dir) / source.path)
    for name in sorted(runs):
        if name not in used and (name != cut_run or feeds_bank(Path(runs[name]), resource.metadata.name)):
            paths.append(Path(runs[name]))
    return paths


def load_benchmarks(datasets: Sequence[DatasetSpec], base_dir: str | Path | None) -> list[BenchmarkItem]:
    """Benchmark questions (only the problem field and, when mapped, the id field are read)."""
    items = []
    for dataset in datasets:
        path = Path(dataset.path) if base_dir is None else Path(base_dir) / dataset.path
        name = path.stem
        for where, row in read_rows(path):
            problem = row.get(dataset.fields.problem)
            if not isinstance(problem, str) or not problem:
                raise ValueError(f"{where}: benchmark row has no text in field {dataset.fields.problem!r}")
            raw_id = row.get(dataset.fields.id) if dataset.fields.id else None
            items.append(
                BenchmarkItem(
                    name, str(raw_id) if raw_id is not None else question_id(problem, name), problem
                )
            )
    return items


def run_difficulty_bank(
    resource: DifficultyBank,
    out_dir: str | Path,
    *,
    runs: Mapping[str, str | Path] | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Build the bank (see the module docstring); returns its summary (also for a complete artifact)."""
    artifact = ArtifactDir(out_dir)
    if artifact.complete:
        return read_summary(artifact.root)
    spec = resource.spec
    cut_run = cut_point_run(resource, runs or {})
    sources = [read_source(p) for p in resolve_sources(resource, runs or {}, base_dir)]
    declared = spec.model.identity() if spec.model is not None else None
    if cut_run is not None:
        check_cut_point_run(cut_run, {s.origin: s.rule for s in sources}, declared)
    index = None
    if spec.decontamination is not None:
        decon = spec.decontamination
        index = BenchmarkIndex(load_benchmarks(decon.benchmarks, base_dir), decon.ngram, decon.threshold)
    cuts = cut_run.cuts if cut_run is not None else None
    result = build_bank(sources, model=declared, dedupe=spec.dedupe, benchmarks=index, cuts=cuts)
    artifact.prepare()
    for number, start in enumerate(range(0, max(len(result.entries), 1), RECORDS_PER_FILE)):
        artifact.write_shard(
            f"part-{number:05d}.jsonl",
            result.entries[start : start + RECORDS_PER_FILE],
            BankEntry,
        )
    summary = _summary(resource, result, sources, cut_run)
    _write_reports(artifact.root, resource, result, summary)
    artifact.finalize(
        Manifest(
            kind=resource.KIND,
            name=resource.metadata.name,
            spec=spec.model_dump(mode="json", by_alias=True),
            metrics=summary,
        )
    )
    write_termination_message(summary, artifact.root)
    return summary


def _summary(
    resource: DifficultyBank, result: BankResult, sources: Sequence[SourceRows], cut_run: CutPointRun | None
) -> dict[str, Any]:
    return {
        "kind": resource.KIND,
        "name": resource.metadata.name,
        "model": result.model,
        "sources": len(sources),
        "read": result.read,
        "questions": len(result.entries),
        "level_counts": {str(k): v for k, v in result.level_counts.items()},
        "duplicates_removed": len(result.duplicates),
        "contaminated_removed": len(result.contaminated),
        "ungraded": result.ungraded,
        "cut_points": cut_run.cuts if cut_run is not None else None,
        "cut_points_from": cut_run.name if cut_run is not None else None,
        "source_rules": [{"origin": s.origin, "rule": s.rule} for s in sources],  # last: long, and the
        # termination message drops keys from the end to fit
    }


def _jsonl(path: Path, rows: Sequence[Contamination] | Sequence[Duplicate]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(asdict(row), ensure_ascii=False) + "\n" for row in rows)
    atomic_write_bytes(path, text.encode())


def _write_reports(root: Path, resource: DifficultyBank, result: BankResult, summary: dict[str, Any]) -> None:
    _jsonl(root / "removed" / "contaminated.jsonl", result.contaminated)
    _jsonl(root / "removed" / "duplicates.jsonl", result.duplicates)
    title = f"{resource.metadata.name}: {len(result.entries)} questions for {result.model}"
    write_level_histogram(result.level_counts, root / "histogram.png", title=title)
    atomic_write_bytes(root / "SUMMARY.md", bank_markdown(summary).encode())
    write_summary(root, summary)


def bank_markdown(summary: Mapping[str, Any]) -> str:
    """SUMMARY.md: the bank's figures and its level table (level 0 solved, 5 hardest)."""
    total = summary["questions"] or 1
    rows = "\n".join(
        f"| {lv} | {count} | {100 * count / total:.1f} % |" for lv, count in summary["level_counts"].items()
    )
    return (
        f"# DifficultyBank {summary['name']}\n\n"
        f"Model: `{summary['model']}`  \nSources: {summary['sources']}, rows read: {summary['read']}\n\n"
        f"- questions in the bank: {summary['questions']}\n"
        f"- duplicates removed: {summary['duplicates_removed']} (removed/duplicates.jsonl)\n"
        f"- contaminated removed: {summary['contaminated_removed']} (removed/contaminated.jsonl)\n"
        f"- not graded (no level), skipped: {summary['ungraded']}\n"
        f"- {_levels_line(summary)}\n\n"
        "| level | questions | share |\n| --- | --- | --- |\n"
        f"{rows}\n\nLevel 0 = solved by the model; 1..5 = unsolved, 5 hardest. ![levels](histogram.png)\n"
    )


def _levels_line(summary: Mapping[str, Any]) -> str:
    if summary.get("cut_points_from") is None:
        return "levels: as each source graded them"
    cuts = ", ".join("-" if c is None else f"{c:.4g}" for c in summary["cut_points"])
    return f"levels: re-levelled with the cut points of GradingRun {summary['cut_points_from']}: {cuts}"
