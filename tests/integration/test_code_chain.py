"""The code chain end to end (issue 14): `adacot run` on one YAML grades small Python functions with the
sandboxed verifier into test-pass levels, banks them, distils them from a teacher whose vLLM server the
stage starts, fine-tunes the student and evaluates it before and after (adacot.demo.code_chain).

Every figure the chain reports is checked against an independent run of the programs: each extracted
program is executed here, in a plain isolated Python process (not adacot's sandbox), on its question's
inputs, and its outputs compared with the expected ones.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adacot.artifacts import GradedQuestion, SftExample, read_records, verify_artifact
from adacot.artifacts.rows import Attempt
from adacot.demo import code_chain
from adacot.stages.levels import level_from_cuts

pytestmark = pytest.mark.integration
STAGES = ["GradingRun/pool", "GradingRun/eval", "DifficultyBank/bank", "DistillationJob/distil",
          "SFTJob/distil-sft"]  # fmt: skip
FIXED_BINS = (0.2, 0.4, 0.6, 0.8)

# Reads [[program, entry point, [[args], ...]], ...] on stdin; prints, per program, the outputs or None.
_RUNNER = """
import json, sys
results = []
for program, entry, inputs in json.load(sys.stdin):
    try:
        scope = {}
        exec(program, scope)
        outputs = []
        for args in inputs:
            try:
                outputs.append(scope[entry](*args))
            except Exception:
                outputs.append("<raised>")
        results.append(outputs)
    except Exception:
        results.append(None)
print(json.dumps(results))
"""


def passed_tests(programs: list[tuple[str | None, dict[str, Any]]]) -> list[int]:
    """Tests each (program, tests) passes, run outside adacot (one `python -I` process, 60 s)."""
    jobs = [[p or "", t["entry_point"], t["inputs"]] for p, t in programs]
    done = subprocess.run(
        [sys.executable, "-I", "-c", _RUNNER],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)
    return [
        0 if got is None else sum(g == e for g, e in zip(got, t["outputs"], strict=True))
        for got, (_, t) in zip(outputs, programs, strict=True)
    ]


def program(text: str) -> str | None:
    """The fenced Python block of an answer (after any reasoning), as the verifier reads it."""
    answer = text.rsplit("</think>", 1)[-1]
    start = answer.find("```python\n")
    end = answer.find("```", start + 10)
    return answer[start + 10 : end] if start >= 0 and end > start else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The project written and trained, then `adacot run code.yaml` as a user types it."""
    root = tmp_path_factory.mktemp("code-chain")
    path = code_chain.write_project(root, port=free_port())
    adacot = str(Path(sys.executable).parent / "adacot")
    result = subprocess.run(
        [adacot, "run", str(path), "--workdir", str(root / "runs"), "--no-progress"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    return root / "runs" / "default", result


def test_every_stage_of_the_code_chain_completes(chain: tuple[Path, Any]) -> None:
    base, result = chain
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for stage in STAGES:
        assert f"{stage} " in result.stdout and "done" in result.stdout
        verify_artifact(base / stage)


def _check_attempts(graded: list[GradedQuestion]) -> list[tuple[Attempt, int]]:
    pairs = [(a, q.question.tests or {}) for q in graded for a in q.attempts]
    counts = passed_tests([(program(a.text), t) for a, t in pairs])
    return [(a, n) for (a, _), n in zip(pairs, counts, strict=True)]


def test_grading_levels_are_the_share_of_tests_passed(chain: tuple[Path, Any]) -> None:
    base, _ = chain
    graded = list(read_records(base / "GradingRun" / "pool", GradedQuestion))
    assert len(graded) == code_chain.QUICK.pool
    checked = _check_attempts(graded)
    for attempt, passed in checked:  # the sandbox's verdicts agree with running the programs here
        assert attempt.verdict is not None and attempt.verdict.total == 5, attempt
        assert attempt.verdict.passed == passed, (attempt.text, attempt.verdict)
        assert attempt.verdict.correct is (passed == 5)
    by_question: dict[str, list[int]] = {}
    for attempt, passed in checked:
        by_question.setdefault(attempt.question_id, []).append(passed)
    levels = set()
    for row in graded:
        counts = by_question[row.key]
        assert row.solved is all(n == 5 for n in counts)
        wrong = [n / 5 for n in counts if n < 5]
        expected = 0 if not wrong else level_from_cuts(sum(wrong) / len(wrong), FIXED_BINS)
        truncated = any(a.finish_reason == "length" for a in row.attempts)
        assert row.level == (5 if truncated and wrong else expected), row
        levels.add(row.level)
    assert 0 in levels and len(levels - {0}) >= 2, levels  # solved ones, and unsolved ones spread


def test_kept_traces_pass_every_test_and_follow_the_eval_distribution(chain: tuple[Path, Any]) -> None:
    base, _ = chain
    examples = list(read_records(base / "DistillationJob" / "distil", SftExample))
    questions = {row.key: row.question for row in read_records(base / "GradingRun" / "pool", GradedQuestion)}
    assert examples, "the teacher kept nothing"
    answers = [(program(e.messages[-1].content), questions[e.question_id].tests or {}) for e in examples]
    assert passed_tests(answers) == [5] * len(examples)
    assert all("<think>" in e.messages[-1].content for e in examples)  # the teacher's reasoning kept
    summary = json.loads((base / "DistillationJob" / "distil" / "summary.json").read_text())
    assert summary["kept"] == len(examples) <= code_chain.QUICK.distill
    assert summary["target_distribution"] is not None


def test_the_student_is_evaluated_on_code_before_and_after(chain: tuple[Path, Any]) -> None:
    base, _ = chain
    evaluation = base / "SFTJob" / "distil-sft" / "evaluation"
    summary = json.loads((evaluation / "summary.json").read_text())
    for label in ("base", "model"):
        graded = list(read_records(evaluation / "grading" / label / "test", GradedQuestion))
        assert len(graded) == code_chain.QUICK.test
        firsts = [(program(q.attempts[0].text), q.question.tests or {}) for q in graded]
        right = sum(n == 5 for n in passed_tests(firsts))
        found = summary["models"][label]["benchmarks"]["test"]["accuracy"]
        assert found == pytest.approx(right / len(graded)), label
    tuned = list(read_records(evaluation / "grading" / "model" / "test", GradedQuestion))
    assert sum("<think>" in q.attempts[0].text for q in tuned) > len(tuned) / 2  # learnt the teacher's way
