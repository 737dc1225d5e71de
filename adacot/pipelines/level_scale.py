"""One level scale for P_eval and the bank: the grading rules of artifacts, and the checks made before
levels from two graded sets are used together (rules: adacot.stages.grading_rule).

- `cut_point_run`: the GradingRun a bank's `levels.cutPointsFrom` names — its rule and the cut points it
  recorded; the bank stage re-levels its sources with them (adacot.pipelines.difficulty_bank).
- `check_p_eval`: a DistillationJob's `distribution.fromGradingRun` run against its bank, before anything
  is drawn: same model, grader, solved rule, PRM, aggregations and cut points, else ValidationFailed
  naming both resources and every field that differs (adacot.pipelines.distillation_job). Both
  executors call these pipelines, so `adacot run` and the operator's pods make the same check.

What a bank records (its summary.json): `model`, `cut_points` / `cut_points_from` (None when it kept its
sources' levels) and `source_rules`, one per source (the rule of a GradingRun source; None for a plain
graded-questions file, whose grader is unknown: only the model and the bank's own cut points are
checked for it). A bank written before these keys existed is checked for its model only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJobSpec
from adacot.api.stage_pod import ValidationFailed
from adacot.artifacts.manifest import read_manifest
from adacot.artifacts.store import is_complete
from adacot.artifacts.summary import SUMMARY_NAME, read_json
from adacot.stages.grading_rule import LEVELS, Rule, check_same, run_rule


def artifact_rule(directory: Path) -> Rule | None:
    """The grading rule of a complete GradingRun artifact; None for any other file or directory."""
    if not directory.is_dir() or not is_complete(directory):
        return None
    manifest = read_manifest(directory)
    if manifest.kind != "GradingRun":
        return None
    try:
        return run_rule(manifest.spec, read_json(directory / SUMMARY_NAME))
    except ValidationError as error:
        raise ValueError(
            f"{directory}: MANIFEST.json holds no GradingRun spec this adacot reads: {error}"
        ) from None


def feeds_bank(directory: Path, bank: str) -> bool:
    """Whether the GradingRun artifact in `directory` was graded for the bank `bank` (its bankRef)."""
    spec = read_manifest(directory).spec if is_complete(directory) else {}
    ref = spec.get("bankRef")
    return isinstance(ref, dict) and ref.get("name") == bank


@dataclass(frozen=True)
class CutPointRun:
    """The GradingRun whose cut points a bank freezes (DifficultyBank levels.cutPointsFrom)."""

    name: str
    directory: Path
    rule: Rule
    cuts: list[float | None]


def cut_point_run(resource: DifficultyBank, runs: Mapping[str, str | Path]) -> CutPointRun | None:
    """The run named by `levels.cutPointsFrom` (None when the bank keeps its sources' levels)."""
    levels = resource.spec.levels
    if levels is None:
        return None
    name = levels.cut_points_from.name
    if name not in runs:
        raise ValueError(
            f"levels.cutPointsFrom {name!r}: no output directory for this GradingRun (--run {name}=DIR)"
        )
    directory = Path(runs[name])
    rule = artifact_rule(directory)
    if rule is None:
        raise ValueError(f"levels.cutPointsFrom {name!r}: {directory} is not a complete GradingRun artifact")
    cuts = rule[LEVELS]
    if cuts is None:
        raise ValidationFailed(
            f"levels.cutPointsFrom {name!r}: GradingRun {name} records no cut points (it was graded by an "
            "older adacot); grade it again"
        )
    return CutPointRun(name, directory, rule, list(cuts))


def check_cut_point_run(
    run: CutPointRun, sources: Mapping[str, Mapping[str, Any] | None], declared: str | None
) -> None:
    """The cut-point run graded the model of every source (and of the bank's spec.model) with the same
    grader: otherwise its cut points are on another scale than the scores they are applied to."""
    why = "so its cut points (levels.cutPointsFrom) do not fit the sources' scores"
    if declared is not None:
        check_same(f"GradingRun {run.name} and the bank's spec.model differ, {why}",
                   (f"GradingRun {run.name}", run.rule), ("spec.model", {"model": declared}))  # fmt: skip
    for origin, rule in sources.items():
        if rule is not None:
            check_same(
                f"GradingRun {run.name} and source {origin} were graded differently, {why}",
                (f"GradingRun {run.name}", run.rule),
                (f"source {origin}", rule),
                skip=(LEVELS,),
            )


def bank_rules(summary: Mapping[str, Any]) -> Iterator[tuple[str, Rule]]:
    """(origin, rule) of every source of a bank as its levels stand in the bank: a source's own cut
    points replaced by the bank's when the bank re-levelled (see the module docstring)."""
    cuts = summary.get("cut_points")
    relevelled = summary.get("cut_points_from") is not None
    model = {"model": summary["model"]} if isinstance(summary.get("model"), str) else {}
    for source in summary.get("source_rules") or [{"origin": "its sources", "rule": None}]:
        rule = dict(source.get("rule") or model)
        if relevelled:
            rule[LEVELS] = cuts
        yield str(source.get("origin")), rule


def check_p_eval(spec: DistillationJobSpec, bank_dir: Path, eval_dir: str | Path | None) -> None:
    """P_eval's run and the bank share one level scale (see the module docstring); ValidationFailed
    naming both and each differing field otherwise. No check without fromGradingRun or its directory."""
    ref = spec.distribution.from_grading_run
    if ref is None or eval_dir is None:
        return
    eval_rule = artifact_rule(Path(eval_dir))
    if eval_rule is None:
        raise ValueError(
            f"distribution.fromGradingRun {ref.name!r}: {eval_dir} is not a complete GradingRun artifact"
        )
    bank = spec.bank_ref.name
    for origin, rule in bank_rules(read_json(bank_dir / SUMMARY_NAME)):
        check_same(
            f"distribution.fromGradingRun {ref.name} and bankRef {bank} (source {origin}) were graded "
            "differently, so P_eval's levels are not the bank's levels",
            (f"GradingRun {ref.name}", eval_rule),
            (f"DifficultyBank {bank}", rule),
        )
