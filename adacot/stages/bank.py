"""The bank stage's logic: graded questions of one model → BankEntry rows, deduplicated and decontaminated.

Callers: adacot.pipelines.difficulty_bank (which reads the sources and writes the artifact). Pure over
rows: `build_bank(sources, ...)` takes every source's graded questions in order and returns the kept
entries plus what was dropped and why.

Rules:
- One model per bank: every source that knows its model must name the same one (and the bank's own
  `model`, when set); otherwise `BankError` lists each source with its model. Difficulty is a property
  of a question *for a model*, so mixing models would mix scales.
- Questions without a level (ungradable: unverifiable reference, every sample undecided) are skipped
  and counted; a bank only holds graded questions.
- Duplicates are found by `normalise_question` (NFKC, case, whitespace, LaTeX spacing commands, spaces
  around symbols). The winner (`dedupe.onConflict`): `first` keeps the first occurrence in source order
  (then file order); `hardest` the highest level; `easiest` the lowest; ties go to the first occurrence.
- Re-levelling (optional, `cuts`: the cut points of DifficultyBank levels.cutPointsFrom) gives every
  unsolved entry the level 1..5 of its score under those cuts, before dedupe; solved entries stay 0.
  An unsolved row without a score cannot be re-levelled and is an error naming it.
- Decontamination (optional) runs after dedupe, with the rule of adacot.stages.decontaminate.
- Entries come out sorted by question id (the artifact's order); two different questions under one id
  are an error, since a bank entry is addressed by its id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adacot.api.difficulty_bank import DedupeSpec
from adacot.api.stage_pod import ValidationFailed
from adacot.artifacts.rows import MAX_LEVEL, MIN_LEVEL, BankEntry, GradedQuestion
from adacot.stages.decontaminate import BenchmarkIndex, Contamination
from adacot.stages.levels import level_from_cuts

_LATEX_SPACING = re.compile(r"\\(?:[,;:!> ]|quad|qquad|enspace|thinspace|medspace|thickspace)")
_SPACE_AROUND_SYMBOL = re.compile(r"\s*([^\w\s])\s*")


class BankError(ValidationFailed):
    """The sources cannot form one bank (mixed models, conflicting ids, rows that cannot be re-levelled)."""


def normalise_question(text: str) -> str:
    """The dedupe key of a question text (see the module docstring)."""
    text = _LATEX_SPACING.sub(" ", unicodedata.normalize("NFKC", text)).casefold()
    text = " ".join(text.split())
    return _SPACE_AROUND_SYMBOL.sub(r"\1", text)


@dataclass(frozen=True)
class SourceRows:
    """One bank input: where it came from, the model it graded (None when unknown), its rows, and its
    grading rule (adacot.stages.grading_rule; None for a plain file)."""

    origin: str
    model: str | None
    rows: Sequence[GradedQuestion]
    rule: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Duplicate:
    """A dropped duplicate: which question was kept instead."""

    question_id: str
    origin: str
    kept_id: str
    kept_origin: str


@dataclass
class BankResult:
    """What `build_bank` produced."""

    model: str
    entries: list[BankEntry]
    duplicates: list[Duplicate] = field(default_factory=list)
    contaminated: list[Contamination] = field(default_factory=list)
    ungraded: int = 0
    read: int = 0

    @property
    def level_counts(self) -> dict[int, int]:
        counts = dict.fromkeys(range(MIN_LEVEL, MAX_LEVEL + 1), 0)
        for entry in self.entries:
            counts[entry.level] += 1
        return counts


def bank_model_name(sources: Sequence[SourceRows], declared: str | None) -> str:
    """The one model of all sources (and the declared one); BankError when they disagree or none is known."""
    named = [("bank spec", declared)] if declared else []
    named += [(s.origin, s.model) for s in sources if s.model]
    models = {model for _, model in named}
    if len(models) > 1:
        listing = "; ".join(f"{where}: {model}" for where, model in named)
        raise BankError(f"a bank holds questions graded for one model, these sources disagree: {listing}")
    if not models:
        raise BankError("no source names its model; set the bank's spec.model")
    return models.pop()


def _level(row: GradedQuestion, cuts: Sequence[float | None] | None, origin: str) -> int:
    """The row's level, or its level under `cuts` when the bank re-levels (solved rows stay 0)."""
    assert row.level is not None
    if cuts is None or row.level == 0 or (row.score is None and row.truncated):
        return row.level  # solved, or put at level 5 unscored for a cut-off answer (grader.truncated)
    if row.score is None:
        raise BankError(
            f"{origin}: unsolved question {row.key!r} has no score, so levels.cutPointsFrom cannot "
            "re-level it; grade it with a grader that scores unsolved questions"
        )
    return level_from_cuts(row.score, cuts)


def _entry(row: GradedQuestion, model: str, origin: str, cuts: Sequence[float | None] | None) -> BankEntry:
    return BankEntry(
        question=row.question,
        level=_level(row, cuts, origin),
        score=row.score,
        pass_rate=row.pass_rate,
        model=model,
        origin=origin,
        truncated=row.truncated,
        prm_truncated=row.prm_truncated,
    )


def _better(new: BankEntry, old: BankEntry, rule: str) -> bool:
    """Whether `new` (seen later) replaces `old` under the conflict rule; ties keep the earlier one."""
    if rule == "hardest":
        return new.level > old.level
    if rule == "easiest":
        return new.level < old.level
    return False


def _dedupe(entries: Iterable[BankEntry], spec: DedupeSpec) -> tuple[list[BankEntry], list[Duplicate]]:
    kept: dict[str, BankEntry] = {}
    dropped: list[Duplicate] = []
    for number, entry in enumerate(entries):
        text_key = normalise_question(entry.question.problem) if spec.enabled else str(number)
        old = kept.get(text_key)
        if old is None:
            kept[text_key] = entry
            continue
        winner, loser = (entry, old) if _better(entry, old, spec.on_conflict) else (old, entry)
        kept[text_key] = winner
        dropped.append(Duplicate(loser.question.id, loser.origin, winner.question.id, winner.origin))
    return list(kept.values()), dropped


def _sorted_by_id(entries: list[BankEntry]) -> list[BankEntry]:
    by_id: dict[str, BankEntry] = {}
    for entry in entries:
        other = by_id.setdefault(entry.question.id, entry)
        if other is not entry:
            raise BankError(
                f"question id {entry.question.id!r} names different questions in {other.origin} and "
                f"{entry.origin}; give the datasets distinct ids (or leave fields.id unset to hash the text)"
            )
    return [by_id[key] for key in sorted(by_id)]


def build_bank(
    sources: Sequence[SourceRows],
    *,
    model: str | None,
    dedupe: DedupeSpec,
    benchmarks: BenchmarkIndex | None = None,
    cuts: Sequence[float | None] | None = None,
) -> BankResult:
    """Merge the sources into bank entries (see the module docstring for every rule); `cuts` re-levels
    the unsolved entries."""
    if not sources:
        raise BankError("a bank needs at least one source (a GradingRun or a graded-questions path)")
    bank_model = bank_model_name(sources, model)
    result = BankResult(model=bank_model, entries=[])
    graded: list[BankEntry] = []
    for source in sources:
        for row in source.rows:
            result.read += 1
            if row.level is None:
                result.ungraded += 1
            else:
                graded.append(_entry(row, bank_model, source.origin, cuts))
    kept, result.duplicates = _dedupe(graded, dedupe)
    if benchmarks is not None:
        clean = []
        for entry in kept:
            hit = benchmarks.check(entry.question)
            if hit is None:
                clean.append(entry)
            else:
                result.contaminated.append(hit)
        kept = clean
    result.entries = _sorted_by_id(kept)
    return result
