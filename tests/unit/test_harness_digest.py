"""Huge return values travel as digests (harness.Digest) and still compare exactly."""

from __future__ import annotations

import json

from adacot.verify import harness
from adacot.verify.code import _check_one, _Outcome
from adacot.verify.code_tests import CallTests

HUGE = [(i, str(i)) for i in range(harness.DIGEST_OVER)]


def test_small_values_stay_plain_and_huge_ones_become_digests() -> None:
    assert harness.encode_result([1, (2, 3)]) == harness.encode([1, (2, 3)])
    encoded = json.loads(json.dumps(harness.encode_result(HUGE)))
    decoded = harness.decode(encoded)
    assert isinstance(decoded, harness.Digest)
    assert decoded == harness.Digest.of(list(HUGE))
    assert decoded.size == len(HUGE) and decoded.type_name == "list"


def test_digests_tell_values_types_and_order_apart() -> None:
    base = harness.Digest.of(HUGE)
    assert harness.Digest.of(tuple(HUGE)) != base
    assert harness.Digest.of([*HUGE[:-1], (0, "0")]) != base
    assert harness.Digest.of(list(reversed(HUGE))) != base


def _judge(expected: object, actual: object) -> bool:
    spec = CallTests(entry_point="f", inputs=[[0]], outputs=None, canonical_solution="def f(x): pass")
    outcome = _Outcome(status="ok", value=actual)
    ok, _, _ = _check_one(spec, expected, outcome, run=None)  # type: ignore[arg-type]
    return ok


def test_a_digest_is_checked_against_expected_values_of_either_form() -> None:
    digest = harness.decode(harness.encode_result(HUGE))
    assert _judge(digest, digest)
    assert _judge(list(HUGE), digest)  # expected held as a value, actual came back as a digest
    assert not _judge([*HUGE[:-1], (0, "x")], digest)
    assert not _judge([1, 2], digest)
