"""The sampler: draw N bank entries so that their levels follow a target distribution.

Callers: `adacot sample` (adacot.cli.sample) and the distillation stage. Pure over rows: a list of
BankEntry in, a `SampleResult` out; no I/O.

The rules, in order:

1. Checks before any work: the bank is not empty, ids are unique, 1 <= N <= bank size; otherwise
   `SampleError`.
2. Allocation (`allocate`): N is split over levels by largest remainder on exact fractions: each level
   gets floor(N * share), and the seats left go to the largest remainders. Ties between equal
   remainders go to the lower (easier) level. So counts sum to N exactly, each level is within 1 of
   N * share, and a level with share 0 gets 0.
3. Shortfall, when a level's target exceeds what the bank holds at that level (a level the bank lacks
   entirely holds 0): `fail` raises `SampleError` naming every short level with wanted and available.
   `redistribute` keeps all the level has and gives its deficit to the nearest ALLOWED levels with
   spare questions, distance 1 first, then 2, ...; at equal distance the easier (lower) neighbour is
   filled first. Short levels are handled easiest first. Every move is reported (`Move`) and described
   in `messages`. Allowed levels are those with a positive share: a level with share 0 was excluded
   (level 0 under excludeEasy, a prior's easy weight 0, a level a table leaves out, a level P_eval never
   saw) and never receives draws, so a redistributed sample never holds questions the distribution
   ruled out. When the allowed levels together hold fewer than N questions, `SampleError` says how many
   they hold and that N was asked, under either policy, before anything is drawn.
4. Drawing: each level's entries are sorted by id (so the bank's order does not matter), shuffled by a
   `random.Random` seeded from sha256(seed, level) (levels draw independently: changing one level's
   quota leaves the others' picks alone), and the first `quota` are taken. With balance_by="source" the
   level's entries are grouped by `question.source`; the groups are visited round-robin, in an order
   shuffled by the same generator, one question per group per round (each group's own order shuffled
   too), so every two sources differ by at most one unless the smaller one ran out.
5. The chosen entries are returned sorted by question id, without repeats.

Limits: the bank is held in memory (a bank entry is a question, not a response; millions fit). The
same seed gives the same sample for the same bank and Python's `random` algorithms, which have been
stable across CPython 3 versions but are not a formal guarantee.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from adacot.artifacts.rows import BankEntry
from adacot.stages.distribution import LEVELS, Distribution

Shortfall = Literal["redistribute", "fail"]
BalanceBy = Literal["none", "source"]


class SampleError(ValueError):
    """The sample cannot be drawn as asked (empty bank, N too large, a short level under `fail`)."""


@dataclass(frozen=True)
class Move:
    """Questions a short level handed to another level."""

    from_level: int
    to_level: int
    count: int


@dataclass(frozen=True)
class LevelTally:
    """One level's figures: the allocation, what the bank had, the quota after moves, what was taken."""

    target: int
    available: int
    quota: int
    taken: int


@dataclass(frozen=True)
class SampleResult:
    """The drawn entries (sorted by id) and how they came about."""

    entries: tuple[BankEntry, ...]
    distribution: Distribution
    n: int
    seed: int
    levels: Mapping[int, LevelTally]
    moves: tuple[Move, ...]
    messages: tuple[str, ...]

    def achieved_shares(self) -> dict[int, float]:
        """Share of each level 0..5 in the drawn sample."""
        return {lv: self.levels[lv].taken / self.n for lv in LEVELS}

    def as_dict(self) -> dict[str, Any]:
        """The figures for a manifest: target vs achieved per level, moves and messages."""
        achieved = self.achieved_shares()
        return {
            "size": self.n,
            "seed": self.seed,
            "distribution": self.distribution.as_json(),
            "levels": {
                str(lv): {
                    "target_share": self.distribution.shares[lv],
                    "achieved_share": achieved[lv],
                    "target": t.target,
                    "available": t.available,
                    "taken": t.taken,
                }
                for lv, t in self.levels.items()
            },
            "moves": [{"from": m.from_level, "to": m.to_level, "count": m.count} for m in self.moves],
            "messages": list(self.messages),
        }


def allocate(n: int, shares: Mapping[int, float]) -> dict[int, int]:
    """Exact integer counts per level summing to `n`, by largest remainder (see the module docstring).

    `shares` need not be normalised (they are divided by their sum) but must be non-negative with a
    positive sum; exact fractions make the result independent of float rounding.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"allocate: n must be a non-negative integer, got {n!r}")
    exact = {lv: Fraction(s) for lv, s in shares.items()}
    if any(s < 0 for s in exact.values()) or sum(exact.values()) <= 0:
        raise ValueError(f"allocate: shares must be non-negative with a positive sum, got {dict(shares)}")
    total = sum(exact.values())
    quotas = {lv: n * s / total for lv, s in exact.items()}
    counts = {lv: int(q) for lv, q in quotas.items()}  # floor: quotas are non-negative
    left = n - sum(counts.values())
    # Only levels with a fractional part can take a seat; their fractions sum to `left` exactly, and
    # each is below 1, so there are more than `left` of them whenever left > 0.
    order = sorted(
        (lv for lv in quotas if quotas[lv] > counts[lv]), key=lambda lv: (counts[lv] - quotas[lv], lv)
    )
    for lv in order[:left]:
        counts[lv] += 1
    return counts


def _check(bank: Sequence[BankEntry], n: int, shortfall: str, balance_by: str) -> None:
    if shortfall not in ("redistribute", "fail"):
        raise SampleError(f"shortfall must be redistribute or fail, not {shortfall!r}")
    if balance_by not in ("none", "source"):
        raise SampleError(f"balance_by must be none or source, not {balance_by!r}")
    if not bank:
        raise SampleError("the bank is empty: there is nothing to sample from")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SampleError(f"the sample size N must be a positive integer, got {n!r}")
    if n > len(bank):
        raise SampleError(
            f"N={n} is larger than the bank ({len(bank)} questions); sampling is without replacement"
        )
    repeated = sorted(k for k, c in Counter(e.question.id for e in bank).items() if c > 1)
    if repeated:
        raise SampleError(f"the bank repeats question ids: {', '.join(repeated[:5])}")


def _short_levels(targets: Mapping[int, int], available: Mapping[int, int]) -> list[int]:
    return [lv for lv in LEVELS if targets[lv] > available[lv]]


def _shortfall_error(
    short: list[int], targets: Mapping[int, int], available: Mapping[int, int]
) -> SampleError:
    parts = [f"level {lv}: wanted {targets[lv]}, available {available[lv]}" for lv in short]
    return SampleError(
        "the bank has too few questions at " + "; ".join(parts) + " (shortfall: fail; use redistribute to "
        "move the missing count to the nearest levels)"
    )


def _excluded_error(n: int, available: Mapping[int, int], distribution: Distribution) -> SampleError | None:
    """The error when the allowed levels (positive share) hold fewer than N questions, else None."""
    allowed = distribution.levels_wanted()
    held = sum(available[lv] for lv in allowed)
    if held >= n:
        return None
    excluded = [lv for lv in LEVELS if lv not in allowed]
    names = ", ".join(str(lv) for lv in excluded)
    each = ", ".join(f"level {lv}: {available[lv]}" for lv in allowed)
    return SampleError(
        f"only {held} questions are available outside the excluded level{'s' * (len(excluded) > 1)} "
        f"{names} ({each}), N={n} asked: a level with share 0 ({distribution.kind}"
        f"{': ' + distribution.detail if distribution.detail else ''}) never receives draws; lower N, "
        "grow the bank, or give those levels a share"
    )


def _neighbours(level: int, allowed: Collection[int]) -> list[int]:
    """Other allowed levels by distance, the easier one first at equal distance."""
    others = [lv for lv in LEVELS if lv != level and lv in allowed]
    return sorted(others, key=lambda lv: (abs(lv - level), lv))


def redistribute(
    targets: Mapping[int, int], available: Mapping[int, int], allowed: Collection[int]
) -> tuple[dict[int, int], list[Move]]:
    """Quotas after moving each short level's deficit to its nearest `allowed` levels with spare (see
    rule 3); the allowed levels must hold N between them."""
    quotas = dict(targets)
    moves: list[Move] = []
    for level in _short_levels(targets, available):
        deficit = quotas[level] - available[level]
        quotas[level] = available[level]
        for other in _neighbours(level, allowed):
            give = min(deficit, available[other] - quotas[other])
            if give > 0:
                quotas[other] += give
                deficit -= give
                moves.append(Move(level, other, give))
            if deficit == 0:
                break
        if deficit:
            raise AssertionError(f"level {level}: {deficit} left over though the allowed levels hold N")
    return quotas, moves


def _move_messages(
    moves: Sequence[Move], targets: Mapping[int, int], available: Mapping[int, int]
) -> list[str]:
    messages = []
    for level in sorted({m.from_level for m in moves}):
        spread = ", ".join(f"{m.count} to level {m.to_level}" for m in moves if m.from_level == level)
        lacks = (
            "the bank has no questions at this level"
            if available[level] == 0
            else f"the bank has {available[level]}"
        )
        deficit = targets[level] - available[level]
        messages.append(
            f"level {level} short by {deficit} (wanted {targets[level]}, {lacks}): moved {spread}"
        )
    return messages


def level_rng(seed: int, level: int) -> random.Random:
    """The generator of one level's draw: independent of the other levels and of the bank's order."""
    digest = hashlib.sha256(f"adacot.sample:{seed}:{level}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _round_robin(pool: list[BankEntry], k: int, rng: random.Random) -> list[BankEntry]:
    groups: dict[str, list[BankEntry]] = {}
    for entry in pool:  # pool is sorted by id, so each group is too
        groups.setdefault(entry.question.source, []).append(entry)
    order = sorted(groups)
    rng.shuffle(order)  # which sources get the extra one when k does not divide evenly
    for name in order:
        rng.shuffle(groups[name])
    chosen: list[BankEntry] = []
    depth = 0
    while len(chosen) < k:
        for name in order:
            if depth < len(groups[name]) and len(chosen) < k:
                chosen.append(groups[name][depth])
        depth += 1
    return chosen


def _draw(pool: list[BankEntry], k: int, rng: random.Random, balance_by: str) -> list[BankEntry]:
    if balance_by == "source":
        return _round_robin(pool, k, rng)
    shuffled = list(pool)
    rng.shuffle(shuffled)
    return shuffled[:k]


def sample(
    bank: Sequence[BankEntry],
    distribution: Distribution,
    n: int,
    seed: int,
    *,
    shortfall: Shortfall = "redistribute",
    balance_by: BalanceBy = "none",
) -> SampleResult:
    """Draw `n` entries of `bank` following `distribution` (the rules are in the module docstring)."""
    _check(bank, n, shortfall, balance_by)
    by_level: dict[int, list[BankEntry]] = {lv: [] for lv in LEVELS}
    for entry in sorted(bank, key=lambda e: e.question.id):
        by_level[entry.level].append(entry)
    available = {lv: len(pool) for lv, pool in by_level.items()}
    targets = allocate(n, distribution.shares)
    short = _short_levels(targets, available)
    if short and shortfall == "fail":
        raise _shortfall_error(short, targets, available)
    excluded = _excluded_error(n, available, distribution)
    if excluded is not None:
        raise excluded
    quotas, moves = redistribute(targets, available, distribution.levels_wanted())
    chosen = [e for lv in LEVELS for e in _draw(by_level[lv], quotas[lv], level_rng(seed, lv), balance_by)]
    taken = Counter(e.level for e in chosen)
    tallies = {lv: LevelTally(targets[lv], available[lv], quotas[lv], taken[lv]) for lv in LEVELS}
    return SampleResult(
        entries=tuple(sorted(chosen, key=lambda e: e.question.id)),
        distribution=distribution,
        n=n,
        seed=seed,
        levels=tallies,
        moves=tuple(moves),
        messages=tuple(_move_messages(moves, targets, available)),
    )
