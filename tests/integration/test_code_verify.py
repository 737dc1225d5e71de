"""The code verifier on real programs: wrong solutions fail with the right reason, stdin/stdout
tests compare whitespace-tolerantly, expected outputs come from a canonical solution, order is kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest

from adacot.artifacts.rows import Verdict
from adacot.verify.code import CodeVerifier
from adacot.verify.sandbox import SandboxLimits

pytestmark = pytest.mark.integration

CANONICAL = "def second_largest(xs):\n    return sorted(set(xs))[-2]\n"
TESTS = {
    "entry_point": "second_largest",
    "inputs": [[[1, 2, 3]], [[5, 5, 4, 1]], [[10, -1]]],
    "canonical_solution": CANONICAL,
}


@pytest.fixture(scope="module")
def verifier() -> Iterator[CodeVerifier]:
    with CodeVerifier(workers=2, limits=SandboxLimits(test_seconds=2, wall_seconds=20)) as v:
        yield v


@pytest.mark.parametrize(
    ("program", "reason", "detail"),
    [
        ("def second_largest(xs):\n    return sorted(set(xs))[-1]\n", "failed_test", "expected 2, got 3"),
        ("def second_largest(xs):\n    return str(sorted(set(xs))[-2])\n", "failed_test", "got '2'"),
        ("def second_largest(xs):\n    while True:\n        pass\n", "timeout", "time limit"),
        ("def second_largest(xs):\n    raise ValueError('nope')\n", "runtime_error", "ValueError: nope"),
        ("def second_largest(xs)\n    return 1\n", "syntax_error", "SyntaxError"),
        ("def other(xs):\n    return 1\n", "runtime_error", "KeyError: 'second_largest'"),
        ("I cannot solve this.", "syntax_error", "SyntaxError"),
    ],
    ids=["off_by_one", "wrong_type", "infinite_loop", "exception", "syntax_error", "no_entry_point", "prose"],
)
def test_wrong_solutions_fail_with_reason(
    verifier: CodeVerifier, program: str, reason: str, detail: str
) -> None:
    verdict = verifier.verify(f"Solution:\n```python\n{program}```\n", TESTS)
    assert verdict.correct is False and verdict.reason == reason
    assert detail in (verdict.detail or "")
    assert verdict.total == 3 and verdict.passed == 0


def test_canonical_outputs_and_partial_pass(verifier: CodeVerifier) -> None:
    right = verifier.verify(f"<think>try</think>```python\n{CANONICAL}```", TESTS)
    assert (right.correct, right.reason, right.passed, right.total) == (True, "passed", 3, 3)
    partial = verifier.verify("def second_largest(xs):\n    return 2\n", TESTS)
    assert partial.correct is False and partial.passed == 1 and (partial.detail or "").startswith("test 1:")


def test_explicit_outputs_floats_and_tuples(verifier: CodeVerifier) -> None:
    # JSON outputs have no tuples: a returned tuple is compared as a list; all-float lists get 1e-6.
    tests = {"entry_point": "f", "inputs": [[1], [2]], "outputs": [[0.1, 1.5], [0.2, 2.5]]}
    assert verifier.verify("def f(x):\n    return (x / 10 + 1e-9, x + 0.5)\n", tests).correct is True
    assert verifier.verify("def f(x):\n    return (x / 10 + 1e-3, x + 0.5)\n", tests).correct is False
    atol = {"entry_point": "f", "inputs": [[1]], "outputs": [1.0], "atol": 0.01}
    assert verifier.verify("def f(x):\n    return 1.005\n", atol).correct is True


def test_no_program_and_bad_tests(verifier: CodeVerifier) -> None:
    assert verifier.verify("  ", TESTS).reason == "no_program"
    bad = verifier.verify("def f(): pass", {"entry_point": "f", "inputs": [[1]]})
    assert bad.correct is None and bad.reason == "bad_tests" and "canonical_solution" in (bad.detail or "")
    broken = {**TESTS, "canonical_solution": "def second_largest(xs):\n    return xs[5]\n"}
    verdict = verifier.verify(CANONICAL, broken)
    assert verdict.correct is None and verdict.reason == "bad_tests"
    assert "canonical solution fails on test 0" in (verdict.detail or "")


STDIO = {
    "stdio": [
        {"input": "3\n1 2 3\n", "output": "6\n"},
        {"input": "2\n10 -4", "output": "6"},
        {"input": "1\n7\n", "output": "7"},
    ]
}


@pytest.mark.parametrize(
    ("program", "correct", "reason"),
    [
        ("n = int(input())\nprint(sum(map(int, input().split())))\n", True, "passed"),
        (
            "import sys\ndata = sys.stdin.read().split()\n"
            "sys.stdout.write(str(sum(map(int, data[1:]))) + '  \\n\\n')\n",
            True,
            "passed",
        ),
        ("data = open(0).read().split()\nprint(sum(map(int, data[1:])), end='')\n", True, "passed"),
        ("import sys\nprint(sum(map(int, sys.stdin.read().split()[1:])))\nsys.exit(0)\n", True, "passed"),
        ("n = int(input())\nprint(sum(map(int, input().split())) + 1)\n", False, "failed_test"),
        ("import sys\nprint(6)\nsys.exit(3)\n", False, "runtime_error"),
        ("n = int(input())\nwhile True:\n    pass\n", False, "timeout"),
    ],
    ids=["input", "stdin_read_trailing_ws", "open0_no_newline", "sys_exit_0", "wrong", "exit_3", "loop"],
)
def test_stdio(verifier: CodeVerifier, program: str, correct: bool, reason: str) -> None:
    verdict = verifier.verify(f"```python\n{program}```", STDIO)
    assert (verdict.correct, verdict.reason) == (correct, reason), verdict.detail


def test_verify_many_keeps_order(verifier: CodeVerifier) -> None:
    good, bad = CANONICAL, "def second_largest(xs):\n    return 0\n"
    pairs = [(good if i % 3 else bad, TESTS) for i in range(10)]
    verdicts = list(verifier.verify_many(pairs))
    assert [v.correct for v in verdicts] == [bool(i % 3) for i in range(10)]


def test_verify_many_runs_past_a_slow_head(verifier: CodeVerifier) -> None:
    # The first sample waits until the twentieth has been verified: with a look-ahead of only
    # 2 x workers (the old window) it could never see that and would give up after 20 s.
    later_done = threading.Event()
    verify = verifier.verify

    def scripted(response: str, tests: dict[str, Any]) -> Verdict:
        if response == "head":
            return Verdict(correct=later_done.wait(20), reason="scripted")
        found = verify(response, tests)
        if response.endswith("# 20\n"):
            later_done.set()
        return found

    pairs = [("head", TESTS)] + [(f"{CANONICAL}# {i}\n", TESTS) for i in range(1, 25)]
    with patch.object(verifier, "verify", scripted):
        verdicts = list(verifier.verify_many(pairs))
    assert [v.correct for v in verdicts] == [True] * 25
