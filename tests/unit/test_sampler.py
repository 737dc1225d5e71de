"""The sampler's properties over many seeds and shapes (hypothesis): exact largest-remainder allocation,
exact counts and shares within rounding when the bank suffices, determinism (same seed, shuffled bank),
no repeats, shortfall moves to the nearest levels (easier first at equal distance) or a failure with the
numbers, and even spreading over sources. Plus the bad-input errors."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adacot.api.common import TaskType
from adacot.api.distillation_job import PriorSpec
from adacot.artifacts.rows import BankEntry, Question
from adacot.stages.distribution import Distribution, from_grading_summary, from_prior, from_table
from adacot.stages.sample import Move, SampleError, SampleResult, allocate, redistribute, sample

LEVELS = range(6)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

weights_st = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=100)), min_size=6, max_size=6
).filter(lambda ws: sum(ws) > 0)
level_sizes_st = st.lists(st.integers(0, 25), min_size=6, max_size=6).filter(lambda s: sum(s) > 0)
seed_st = st.integers(0, 2**32)
spare_st = st.lists(st.integers(0, 8), min_size=6, max_size=6)


def entry(qid: str, level: int, source: str = "pool") -> BankEntry:
    question = Question(id=qid, task=TaskType.math, problem=f"problem {qid}", answer="1", source=source)
    return BankEntry(question=question, level=level, model="m", origin="run")


def make_bank(sizes: list[int], sources: int = 1) -> list[BankEntry]:
    return [
        entry(f"q{lv}-{i:03d}", lv, f"src{i % sources}")
        for lv, size in zip(LEVELS, sizes, strict=True)
        for i in range(size)
    ]


def dist(weights: list[float]) -> Distribution:
    return from_table({str(lv): w for lv, w in zip(LEVELS, weights, strict=True)})


def ids(result: SampleResult) -> list[str]:
    return [e.question.id for e in result.entries]


# ------------------------------------------------------------------------------------------- allocate


@PROPERTY
@given(n=st.integers(0, 10_000), weights=weights_st)
def test_allocate_is_exact_and_within_one(n: int, weights: list[float]) -> None:
    shares = dict(zip(LEVELS, weights, strict=True))
    counts = allocate(n, shares)
    assert sum(counts.values()) == n
    total = sum(Fraction(w) for w in weights)
    for lv in LEVELS:
        quota = n * Fraction(weights[lv]) / total
        assert abs(counts[lv] - quota) < 1  # largest remainder: floor or floor + 1
        if weights[lv] == 0:
            assert counts[lv] == 0


@pytest.mark.parametrize(
    ("n", "shares", "expected"),
    [
        (10, {0: 1, 1: 1, 2: 1}, {0: 4, 1: 3, 2: 3}),  # equal remainders: the easier level wins
        (2, {0: 1, 1: 1, 2: 1}, {0: 1, 1: 1, 2: 0}),
        (7, {1: 5, 2: 4, 3: 3, 4: 2, 5: 1}, {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}),
        (2000, {1: 5, 2: 4, 3: 3, 4: 2, 5: 1}, {1: 667, 2: 533, 3: 400, 4: 267, 5: 133}),
        (1, {0: 0, 5: 1}, {0: 0, 5: 1}),
        (5, {3: 1, 4: 2, 5: 7}, {3: 1, 4: 1, 5: 3}),  # quotas 0.5 / 1 / 3.5: the tie goes to level 3
    ],
)
def test_allocate_table(n: int, shares: dict[int, float], expected: dict[int, int]) -> None:
    assert allocate(n, shares) == expected


@pytest.mark.parametrize("shares", [{0: 0, 1: 0}, {0: -1, 1: 2}, {}])
def test_allocate_rejects_bad_shares(shares: dict[int, float]) -> None:
    with pytest.raises(ValueError, match="non-negative with a positive sum"):
        allocate(3, shares)


# --------------------------------------------------------------------------------------------- sample


@PROPERTY
@given(sizes=level_sizes_st, weights=weights_st, seed=seed_st, data=st.data())
def test_sample_properties(sizes: list[int], weights: list[float], seed: int, data: st.DataObject) -> None:
    bank = make_bank(sizes)
    n = data.draw(st.integers(1, len(bank)), label="n")
    d = dist(weights)
    allowed = sum(size for size, w in zip(sizes, weights, strict=True) if w > 0)
    if n > allowed:  # the levels with a share cannot supply N: never filled from excluded levels
        with pytest.raises(SampleError, match=f"only {allowed} questions are available .* N={n} asked"):
            sample(bank, d, n, seed)
        return
    result = sample(bank, d, n, seed)
    assert all(result.levels[lv].taken == 0 for lv in LEVELS if weights[lv] == 0)
    chosen = ids(result)
    assert len(chosen) == n == len(set(chosen))  # exact size, no repeats
    assert set(chosen) <= {e.question.id for e in bank}
    assert chosen == sorted(chosen)
    taken = Counter(e.level for e in result.entries)
    assert all(taken[lv] == result.levels[lv].taken <= sizes[lv] for lv in LEVELS)
    if not result.moves:
        # The bank sufficed: exact allocation, shares within rounding of the target.
        assert all(taken[lv] == result.levels[lv].target for lv in LEVELS)
        assert all(abs(taken[lv] / n - d.shares[lv]) < 1 / n + 1e-12 for lv in LEVELS)
    # Determinism: the same seed on a shuffled copy of the bank gives the same ids.
    shuffled = list(bank)
    random.Random(seed).shuffle(shuffled)
    assert ids(sample(shuffled, d, n, seed)) == chosen


@PROPERTY
@given(weights=weights_st, n=st.integers(1, 300), spare=spare_st, seed=seed_st)
def test_exact_counts_when_the_bank_suffices(
    weights: list[float], n: int, spare: list[int], seed: int
) -> None:
    d = dist(weights)
    targets = allocate(n, d.shares)
    bank = make_bank([targets[lv] + spare[lv] for lv in LEVELS])  # every level holds its target or more
    for shortfall in ("redistribute", "fail"):
        result = sample(bank, d, n, seed, shortfall=shortfall)
        assert not result.moves and not result.messages
        assert {lv: t.taken for lv, t in result.levels.items()} == targets
        assert all(abs(t.taken / n - d.shares[lv]) < 1 / n for lv, t in result.levels.items())


@settings(max_examples=40, deadline=None)
@given(seed=seed_st)
def test_different_seeds_usually_differ(seed: int) -> None:
    bank = make_bank([40, 40, 40, 40, 40, 40])
    d = from_table({"1": 1, "3": 1})
    first = ids(sample(bank, d, 20, seed))
    differing = sum(ids(sample(bank, d, 20, seed + k)) != first for k in range(1, 11))
    # Each level draws 10 of 40: two seeds agree with probability 1 / C(40, 10)^2, about 1e-18.
    assert differing == 10


def test_levels_draw_independently() -> None:
    bank = make_bank([30, 30, 30, 30, 30, 30])
    a = sample(bank, from_table({"1": 1, "2": 1}), 20, 7)
    b = sample(bank, from_table({"1": 1, "2": 3}), 20, 7)
    level1 = [e.question.id for e in a.entries if e.level == 1]
    # Level 1's quota shrank from 10 to 5: its picks are a prefix of the same shuffled order.
    assert set(e.question.id for e in b.entries if e.level == 1) < set(level1)


# ------------------------------------------------------------------------------------------ shortfall


def check_nearest(result: SampleResult) -> None:
    """Every move went to the nearest allowed level (positive share) with spare, the easier one first at
    equal distance: all closer allowed levels (and the easier one at the same distance) must be full at
    the end."""
    allowed = set(result.distribution.levels_wanted())
    full = {lv for lv, t in result.levels.items() if t.taken == t.available}
    for move in result.moves:
        assert move.to_level in allowed, move
        d = abs(move.to_level - move.from_level)
        closer = {lv for lv in LEVELS if 0 < abs(lv - move.from_level) < d}
        if move.to_level > move.from_level:
            closer |= {move.from_level - d} & set(LEVELS)
        assert closer & allowed <= full, (move, result.levels)


@PROPERTY
@given(sizes=level_sizes_st, weights=weights_st, seed=seed_st, data=st.data())
def test_redistribute_conserves_n_and_moves_to_nearest(
    sizes: list[int], weights: list[float], seed: int, data: st.DataObject
) -> None:
    allowed = sum(size for size, w in zip(sizes, weights, strict=True) if w > 0)
    assume(allowed > 0)
    n = data.draw(st.integers(1, allowed), label="n")
    result = sample(make_bank(sizes), dist(weights), n, seed, shortfall="redistribute")
    assert len(result.entries) == n
    check_nearest(result)
    for lv, t in result.levels.items():
        out = sum(m.count for m in result.moves if m.from_level == lv)
        into = sum(m.count for m in result.moves if m.to_level == lv)
        assert t.taken == t.target - out + into <= t.available
        assert out == max(0, t.target - t.available)  # a short level gives exactly its deficit
        assert not (out and into)
    short = sorted({m.from_level for m in result.moves})
    assert [int(msg.split()[1]) for msg in result.messages] == short


@PROPERTY
@given(weights=weights_st, n=st.integers(1, 300), spare=spare_st, seed=seed_st, data=st.data())
def test_fail_raises_with_the_numbers(
    weights: list[float], n: int, spare: list[int], seed: int, data: st.DataObject
) -> None:
    d = dist(weights)
    targets = allocate(n, d.shares)
    wanted = [lv for lv in LEVELS if targets[lv] > 0]
    # Some levels short (never all six, so the bank still holds N), each a random amount below target.
    short = data.draw(
        st.sets(st.sampled_from(wanted), min_size=1, max_size=min(len(wanted), 5)), label="short"
    )
    sizes = [
        data.draw(st.integers(0, targets[lv] - 1)) if lv in short else targets[lv] + spare[lv]
        for lv in LEVELS
    ]
    # The missing questions sit at a level with a share (one with share 0 never receives draws).
    roomy = next((lv for lv in LEVELS if lv not in short and weights[lv] > 0), None)
    assume(roomy is not None)
    sizes[roomy] += sum(targets[lv] - sizes[lv] for lv in short)
    with pytest.raises(SampleError) as caught:
        sample(make_bank(sizes), d, n, seed, shortfall="fail")
    message = str(caught.value)
    for lv in LEVELS:
        assert (f"level {lv}: wanted {targets[lv]}, available {sizes[lv]}" in message) == (lv in short)
    # The same bank under redistribute keeps N.
    assert len(sample(make_bank(sizes), d, n, seed).entries) == n


def test_redistribute_table() -> None:
    # Level 3 wants 6 and has 1: 5 go to level 2 (easier, distance 1) up to its spare 2, then level 4
    # (distance 1) takes 3.
    allowed = (2, 3, 4)
    quotas, moves = redistribute(
        {0: 0, 1: 0, 2: 2, 3: 6, 4: 2, 5: 0}, {0: 9, 1: 9, 2: 4, 3: 1, 4: 9, 5: 9}, allowed
    )
    assert moves == [Move(3, 2, 2), Move(3, 4, 3)]
    assert quotas == {0: 0, 1: 0, 2: 4, 3: 1, 4: 5, 5: 0}
    # A missing hardest level spills over level 4 (full) into level 3 and then level 2.
    quotas, moves = redistribute(
        {0: 0, 1: 0, 2: 0, 3: 0, 4: 3, 5: 7}, {0: 9, 1: 9, 2: 9, 3: 2, 4: 3, 5: 0}, range(6)
    )
    assert moves == [Move(5, 3, 2), Move(5, 2, 5)]
    # Only allowed levels receive: level 1 is nearer level 2's deficit, but only level 4 is allowed.
    quotas, moves = redistribute({0: 0, 1: 0, 2: 3, 3: 0, 4: 1, 5: 0}, {lv: 2 for lv in range(6)}, (2, 4))
    assert moves == [Move(2, 4, 1)] and quotas == {0: 0, 1: 0, 2: 2, 3: 0, 4: 2, 5: 0}


def test_level_missing_from_bank_is_reported() -> None:
    bank = make_bank([5, 5, 5, 5, 5, 0])
    result = sample(bank, from_table({"3": 1, "4": 1, "5": 1}), 9, 0)
    assert [(m.from_level, m.to_level, m.count) for m in result.moves] == [(5, 4, 2), (5, 3, 1)]
    assert result.messages == (
        "level 5 short by 3 (wanted 3, the bank has no questions at this level): "
        "moved 2 to level 4, 1 to level 3",
    )
    with pytest.raises(SampleError, match="level 5: wanted 3, available 0"):
        sample(bank, from_table({"3": 1, "4": 1, "5": 1}), 9, 0, shortfall="fail")


# ---------------------------------------------------------------------------- excluded levels (share 0)


def test_exclude_easy_never_fills_from_level_0() -> None:
    """The reproduction of issue 14: 34 questions outside level 0, N=40 with excludeEasy; main drew 6 of
    the 40 from level 0. Now: a clear error with the numbers, and N within reach draws no level 0."""
    bank = make_bank([100, 5, 9, 10, 6, 4])
    excluded = from_grading_summary({"level_counts": {"0": 50, "1": 10, "2": 10, "3": 10}}, exclude_easy=True)
    with pytest.raises(SampleError) as caught:
        sample(bank, excluded, 40, 0)
    assert str(caught.value).startswith(
        "only 24 questions are available outside the excluded levels 0, 4, 5 "
        "(level 1: 5, level 2: 9, level 3: 10), N=40 asked"
    )
    with pytest.raises(SampleError, match="only 34 questions are available outside the excluded level 0 "):
        sample(bank, from_table({str(lv): 1 for lv in range(6)}, exclude_easy=True), 40, 0)
    result = sample(bank, from_table({str(lv): 1 for lv in range(6)}, exclude_easy=True), 34, 0)
    assert result.levels[0].taken == 0 and len(result.entries) == 34


@pytest.mark.parametrize(
    "distribution",
    [
        from_prior(PriorSpec()),  # easy weight 0
        from_table({"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}),  # a table leaving level 0 out
        from_table({"0": 1, "1": 1, "2": 1, "3": 1, "4": 1, "5": 1}, exclude_easy=True),
    ],
    ids=["prior", "table-omits-0", "exclude-easy"],
)
def test_zero_share_levels_never_receive_draws(distribution: Distribution) -> None:
    bank = make_bank([50, 2, 30, 30, 30, 30])
    result = sample(bank, distribution, 60, 5)
    assert result.levels[0].taken == 0 and result.levels[1].taken == 2
    assert all(m.to_level != 0 for m in result.moves) and len(result.entries) == 60
    with pytest.raises(SampleError, match="only 122 questions are available outside the excluded level 0"):
        sample(bank, distribution, 123, 5)


# ------------------------------------------------------------------------------------- balance_by


@PROPERTY
@given(
    per_source=st.lists(st.integers(0, 12), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
    seed=seed_st,
    data=st.data(),
)
def test_balance_by_source_spreads_evenly(per_source: list[int], seed: int, data: st.DataObject) -> None:
    bank = [entry(f"{s}-{i}", 2, f"src{s}") for s, size in enumerate(per_source) for i in range(size)]
    k = data.draw(st.integers(1, len(bank)), label="k")
    result = sample(bank, from_table({"2": 1}), k, seed, balance_by="source")
    taken = Counter(e.question.source for e in result.entries)
    have = {f"src{s}": size for s, size in enumerate(per_source)}
    for s, t in ((s, t) for s in have for t in have):
        # Max-min fair: a source with fewer picks than another (by 2+) must have run out.
        if taken[s] < taken[t] - 1:
            assert taken[s] == have[s], (taken, have)
    random.Random(seed).shuffle(bank)
    assert ids(sample(bank, from_table({"2": 1}), k, seed, balance_by="source")) == ids(result)


def test_balance_by_source_against_a_dominant_source() -> None:
    bank = [entry(f"big-{i}", 1, "big") for i in range(90)] + [
        entry(f"small-{i}", 1, "small") for i in range(10)
    ]
    plain = Counter(e.question.source for e in sample(bank, from_table({"1": 1}), 20, 3).entries)
    balanced = Counter(
        e.question.source for e in sample(bank, from_table({"1": 1}), 20, 3, balance_by="source").entries
    )
    assert balanced == {"big": 10, "small": 10}
    assert plain["small"] < 10  # without balancing the small source keeps roughly its 10 % share


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("bank", "n", "kwargs", "message"),
    [
        ([], 1, {}, "the bank is empty"),
        (make_bank([2, 2, 0, 0, 0, 0]), 5, {}, r"N=5 is larger than the bank \(4 questions\)"),
        (make_bank([2, 0, 0, 0, 0, 0]), 0, {}, "must be a positive integer"),
        (make_bank([2, 0, 0, 0, 0, 0]) * 2, 1, {}, "repeats question ids: q0-000, q0-001"),
        (make_bank([2, 0, 0, 0, 0, 0]), 1, {"shortfall": "skip"}, "shortfall must be redistribute or fail"),
        (make_bank([2, 0, 0, 0, 0, 0]), 1, {"balance_by": "topic"}, "balance_by must be none or source"),
    ],
)
def test_bad_inputs(bank: list[BankEntry], n: int, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SampleError, match=message):
        sample(bank, from_table({"0": 1}), n, 0, **kwargs)  # type: ignore[arg-type]


def test_report_has_target_and_achieved_shares() -> None:
    result = sample(make_bank([10, 10, 10, 10, 10, 2]), from_table({"4": 1, "5": 1}), 10, 1)
    report = result.as_dict()
    assert report["levels"]["5"] == {
        "target_share": 0.5, "achieved_share": 0.2, "target": 5, "available": 2, "taken": 2
    }  # fmt: skip
    assert report["levels"]["4"]["achieved_share"] == 0.8
    assert report["moves"] == [{"from": 5, "to": 4, "count": 3}]
    assert report["distribution"]["kind"] == "table"


def test_balance_by_source_extra_picks_rotate_with_the_seed() -> None:
    # 3 sources x 10 questions, 4 picks: one source gets 2. Which one is seeded, not alphabetical.
    bank = [entry(f"{s}-{i}", 1, s) for s in "abc" for i in range(10)]
    favoured = set()
    for seed in range(30):
        taken = Counter(
            e.question.source
            for e in sample(bank, from_table({"1": 1}), 4, seed, balance_by="source").entries
        )
        assert sorted(taken.values()) == [1, 1, 2]
        favoured.add(taken.most_common(1)[0][0])
    assert favoured == {"a", "b", "c"}
