"""Decontamination: drop bank questions that overlap evaluation benchmarks, by word n-grams.

Callers: adacot.stages.bank (the bank stage) and, later, distillation. The rule (DecontaminationSpec):

- Text is normalised (`normalise_words`): NFKC, lower case, LaTeX spacing commands (`\\,` `\\;` `\\!`
  `\\quad` ...) removed, then split into words = runs of letters and digits (so `$x^2+1$` and
  `x^{2} + 1` give the same words).
- A question with at least `ngram` words is contaminated when the share of its distinct n-grams that
  occur in ONE benchmark question is greater than `threshold` (threshold 0 means: any shared n-gram,
  open-r1's rule with n = 8).
- A question shorter than `ngram` words has no n-gram; it is contaminated when its whole word sequence
  equals a benchmark question's (short questions are otherwise never caught).

Each removal names the benchmark question (dataset and id), the share, and one shared n-gram, so a
reviewer can check it. Limits: word-level only (no paraphrase or translation detection); the index of
benchmark n-grams lives in memory (a few MB for the usual benchmarks).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from adacot.artifacts.rows import Question

_LATEX_SPACING = re.compile(r"\\(?:[,;:!> ]|quad|qquad|enspace|thinspace|medspace|thickspace)")
_WORD = re.compile(r"[^\W_]+")


def normalise_words(text: str) -> tuple[str, ...]:
    """The words the n-grams are built from (see the module docstring)."""
    text = _LATEX_SPACING.sub(" ", unicodedata.normalize("NFKC", text)).lower()
    return tuple(_WORD.findall(text))


def ngrams(words: tuple[str, ...], n: int) -> set[tuple[str, ...]]:
    """The distinct word n-grams of a word sequence (empty when it is shorter than n)."""
    return {words[i : i + n] for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question: only its text is compared; name and id go into the removal report."""

    benchmark: str
    id: str
    problem: str


@dataclass(frozen=True)
class Contamination:
    """Why a question was removed."""

    question_id: str
    benchmark: str
    """Source (dataset name) of the matching benchmark question."""
    benchmark_id: str
    overlap: float
    """Share of the question's n-grams found in the benchmark question (1.0 for a whole-text match)."""
    ngram: str
    """One shared n-gram (or the whole short text), space-joined."""


class BenchmarkIndex:
    """Word n-grams of benchmark questions, for `check`."""

    def __init__(self, benchmarks: Iterable[BenchmarkItem], n: int, threshold: float = 0.0) -> None:
        if n < 1 or not 0 <= threshold < 1:
            raise ValueError(f"decontamination: need ngram >= 1 and 0 <= threshold < 1, got {n}, {threshold}")
        self.n = n
        self.threshold = threshold
        self.items: list[BenchmarkItem] = []
        self._grams: dict[tuple[str, ...], list[int]] = {}
        self._whole: dict[tuple[str, ...], int] = {}
        for question in benchmarks:
            self._add(question)

    def _add(self, item: BenchmarkItem) -> None:
        index = len(self.items)
        self.items.append(item)
        words = normalise_words(item.problem)
        self._whole.setdefault(words, index)
        for gram in ngrams(words, self.n):
            self._grams.setdefault(gram, []).append(index)

    def __len__(self) -> int:
        return len(self.items)

    def check(self, question: Question) -> Contamination | None:
        """The best-overlapping benchmark match above the threshold, or None when the question is clean."""
        words = normalise_words(question.problem)
        grams = ngrams(words, self.n)
        if not grams:
            hit = self._whole.get(words)
            return None if hit is None or not words else self._found(question, hit, 1.0, words)
        shared: Counter[int] = Counter()
        example: dict[int, tuple[str, ...]] = {}
        for gram in grams:
            for hit in set(self._grams.get(gram, ())):
                shared[hit] += 1
                example.setdefault(hit, gram)
        if not shared:
            return None
        # Ties go to the earlier benchmark question, so reports are stable across runs.
        best, count = min(shared.items(), key=lambda item: (-item[1], item[0]))
        overlap = count / len(grams)
        return self._found(question, best, overlap, example[best]) if overlap > self.threshold else None

    def _found(self, question: Question, hit: int, overlap: float, gram: tuple[str, ...]) -> Contamination:
        bench = self.items[hit]
        return Contamination(question.id, bench.benchmark, bench.id, round(overlap, 6), " ".join(gram))
