"""All 378 MBPP+ canonical solutions pass their base and plus tests, expected outputs coming from the
canonical solution run in the sandbox (as EvalPlus computes them). 2 workers, as on CI."""

from __future__ import annotations

import json
import time

import pytest
from shared_data import MBPPPLUS

from adacot.verify.code import CodeVerifier
from adacot.verify.code_tests import mbppplus_tests
from adacot.verify.sandbox import SandboxLimits

pytestmark = pytest.mark.integration

DATA = MBPPPLUS
# Mbpp/255 tests 88, 89, 93, 99, 103 return up to 1.66 million 77-tuples: they travel as digests
# (harness.Digest) and need EvalPlus's 4 GiB memory limit.
LIMITS = SandboxLimits(test_seconds=30, wall_seconds=300, memory_bytes=4 << 30)


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not present")
def test_all_mbppplus_canonical_solutions_pass() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    assert len(rows) == 378
    pairs = []
    for row in rows:
        pairs.append((f"```python\n{row['canonical_solution']}```", mbppplus_tests(row)))
    started = time.monotonic()
    with CodeVerifier(workers=2, limits=LIMITS) as verifier:
        verdicts = list(verifier.verify_many(pairs))
    seconds = time.monotonic() - started
    failures = [
        (row["task_id"], v.reason, v.detail) for row, v in zip(rows, verdicts, strict=True) if not v.correct
    ]
    assert failures == []
    executed = sum(v.total or 0 for v in verdicts)
    assert executed == sum(len(r["base_input"]) + len(r["plus_input"]) for r in rows)
    print(f"MBPP+: 378 tasks, {executed} tests, {seconds:.1f} s with 2 workers")
