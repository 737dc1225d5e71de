"""The code Result-Verifier: extract a program from a response and run it against tests, sandboxed.

Called by the grading and distillation stages and by `adacot verify code`. One sample = one sandboxed
process (adacot.verify.sandbox) running the harness (adacot.verify.harness, then harness_main, as one
script), which executes every test with a per-test time limit and reports only the actual results
through its own channel; this module compares them with the expected values, which never enter the
sandbox. Spec forms and the comparison rule are in adacot.verify.code_tests.

Reasons in the Verdict: passed; failed_test (wrong output); runtime_error (exception, non-zero exit,
worker died without a result); timeout (a test over its limit, or the whole run over the wall limit);
output_limit (stdout/stderr/result over the cap); syntax_error; no_program; bad_tests (correct=None:
the spec is malformed or the canonical solution fails); sandbox_error (correct=None: the sandbox did
not start). `passed`/`total` count tests; tests after a timeout are not run and count as failed.
Nothing here raises for a bad sample.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from adacot.artifacts.rows import Verdict
from adacot.verify import harness, harness_main
from adacot.verify.code_tests import (
    BadTests,
    CallTests,
    CodeTests,
    StdioTests,
    as_json_shape,
    outputs_match,
    parse_tests,
    stdout_matches,
)
from adacot.verify.sandbox import Sandbox, SandboxLimits, SandboxRun

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", ""}
_HARNESS_SOURCE = "\n".join(
    Path(path).read_text(encoding="utf-8") for path in (harness.__file__, harness_main.__file__)
)
"""The sandbox's script: harness.py, then harness_main.py (which ends by calling main), as one
self-contained text; the order is fixed (see adacot.verify.harness)."""
_CACHE_SIZE = 256
LOOKAHEAD = 256
"""How many samples `CodeVerifier.verify_many` keeps submitted ahead of the one it yields next.
With 2 x workers (before issue 17), one slow sample at the head left the other workers idle: in
MBPP+, Mbpp/123 runs ~9 s while most tasks take ~50 ms, and 2 workers were no faster than 1."""
_DETAIL_CAP = 500


def extract_program(response: str) -> str | None:
    """The last fenced python/py/unlabelled block; else the whole text. Only the part after the
    last `</think>` is looked at when present. None when nothing but whitespace is left."""
    text = response.rsplit("</think>", 1)[-1]
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    program = blocks[-1] if blocks else text
    return program if program.strip() else None


@dataclass
class _Outcome:
    """What the harness said about one test."""

    status: str
    value: Any = None
    stdout: str = ""
    detail: str = ""


@dataclass
class _Report:
    """The parsed result channel of one run."""

    outcomes: dict[int, _Outcome] = field(default_factory=dict)
    syntax_error: str | None = None
    garbled: list[str] = field(default_factory=list)


class CodeVerifier:
    """Verifies code responses; a context manager owning a sandbox and a thread pool."""

    def __init__(self, workers: int = 1, limits: SandboxLimits | None = None) -> None:
        self.workers = max(1, workers)
        self.sandbox = Sandbox(limits, slots=self.workers)
        # One thread more than sandbox slots: while a slot runs a sample, a thread encodes the next
        # sample's tests or judges the last one's results instead of the slot waiting for that.
        self._pool = ThreadPoolExecutor(self.workers + 1, thread_name_prefix="code-verify")
        self._expected: OrderedDict[str, list[Any] | str] = OrderedDict()
        self._lock = threading.Lock()

    def __enter__(self) -> CodeVerifier:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.sandbox.close()

    def verify_many(
        self, pairs: Iterable[tuple[str, dict[str, Any] | CodeTests]], lookahead: int = LOOKAHEAD
    ) -> Iterator[Verdict]:
        """Verdicts in input order, each as soon as it and every one before it is done.

        Up to `lookahead` samples (at least 2 x workers) are submitted and not yet yielded: a slow
        sample holds back the yield of the verdicts after it, not the workers, which go on with
        the samples behind it. Stopping early (break, close) cancels the samples not yet started."""
        limit = max(lookahead, 2 * self.workers)
        window: deque[Future[Verdict]] = deque()
        try:
            for response, tests in pairs:
                window.append(self._pool.submit(self.verify, response, tests))
                while window and (window[0].done() or len(window) >= limit):
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def verify(self, response: str, tests: dict[str, Any] | CodeTests) -> Verdict:
        """Run the program in `response` against `tests`; never raises for a bad sample."""
        try:
            spec = parse_tests(tests)
        except BadTests as exc:
            return Verdict(correct=None, reason="bad_tests", detail=_cap(str(exc)))
        program = extract_program(response or "")
        total = len(spec.inputs) if isinstance(spec, CallTests) else len(spec.stdio)
        if program is None:
            return Verdict(correct=False, reason="no_program", passed=0, total=total)
        try:
            expected = self.expected_outputs(spec)
        except BadTests as exc:
            return Verdict(correct=None, reason="bad_tests", extracted=program, detail=_cap(str(exc)))
        run = self._run(program, spec)
        return _judge(program, spec, expected, run)

    # ------------------------------------------------------------------ running

    def _run(self, program: str, spec: CodeTests) -> SandboxRun:
        job: dict[str, Any]
        if isinstance(spec, StdioTests):
            job = {"mode": "stdio", "inputs": [case.input for case in spec.stdio]}
        else:
            job = {
                "mode": "call",
                "entry_point": spec.entry_point,
                "inputs": [harness.encode(list(args)) for args in spec.inputs],
            }
        limits = self.sandbox.limits
        job |= {"test_seconds": limits.test_seconds, "record_bytes": limits.result_bytes}
        files = {"job.json": json.dumps(job).encode(), "program.py": program.encode()}
        return self.sandbox.run(_HARNESS_SOURCE, files)

    def expected_outputs(self, spec: CodeTests) -> list[Any]:
        """Expected values: from the spec, or from the canonical solution (cached by content); raises
        BadTests when the canonical solution fails."""
        if isinstance(spec, StdioTests):
            return [case.output for case in spec.stdio]
        if spec.outputs is not None:
            return spec.outputs
        key = hashlib.sha256(
            json.dumps([spec.canonical_solution, spec.entry_point, harness.encode(spec.inputs)]).encode()
        ).hexdigest()
        with self._lock:
            if key in self._expected:
                self._expected.move_to_end(key)
                return self._cached(key)
        assert spec.canonical_solution is not None
        found: list[Any] | str = self._canonical_outputs(spec.canonical_solution, spec)
        with self._lock:
            self._expected[key] = found
            while len(self._expected) > _CACHE_SIZE:
                self._expected.popitem(last=False)
        return self._cached(key)

    def _cached(self, key: str) -> list[Any]:
        found = self._expected[key]
        if isinstance(found, str):  # the canonical solution failed: remembered as the error text
            raise BadTests(found)
        return found

    def _canonical_outputs(self, canonical: str, spec: CallTests) -> list[Any] | str:
        report = _read_channel(self._run(canonical, spec), len(spec.inputs))
        if report.syntax_error:
            return f"canonical solution does not compile: {report.syntax_error}"
        values = []
        for index in range(len(spec.inputs)):
            outcome = report.outcomes.get(index)
            if outcome is None or outcome.status != "ok":
                why = "no result" if outcome is None else f"{outcome.status}: {outcome.detail}"
                return f"canonical solution fails on test {index}: {why}"
            values.append(outcome.value)
        return values


# ---------------------------------------------------------------------- judging


def _read_channel(run: SandboxRun, total: int) -> _Report:
    """Parse the harness's records; anything malformed, duplicated or out of range is noted and
    ignored, so the affected tests count as failed."""
    report = _Report()
    for line in run.channel.splitlines():
        try:
            record = json.loads(line)
            if record.get("event") == "syntax_error":
                report.syntax_error = str(record.get("detail", ""))
            elif "event" not in record:
                _add_outcome(report, record, total)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            report.garbled.append(_cap(str(exc)))
    return report


def _add_outcome(report: _Report, record: dict[str, Any], total: int) -> None:
    index = record["i"]
    if type(index) is not int or not 0 <= index < total:
        raise ValueError(f"test index {index!r} out of range")
    outcome = _Outcome(
        status=str(record["status"]),
        detail=str(record.get("detail") or ""),
        stdout=str(record.get("stdout") or ""),
    )
    if outcome.status == "ok" and "value" in record:
        outcome.value = harness.decode(record["value"])
    if index in report.outcomes:
        # A second record for one test means something wrote to the channel besides the harness.
        report.outcomes[index] = _Outcome(status="garbled", detail="duplicate result record")
        raise ValueError(f"duplicate result for test {index}")
    report.outcomes[index] = outcome


def _judge(program: str, spec: CodeTests, expected: list[Any], run: SandboxRun) -> Verdict:
    total = len(expected)
    report = _read_channel(run, total)
    if report.syntax_error is not None:
        return Verdict(
            correct=False,
            reason="syntax_error",
            extracted=program,
            detail=_cap(report.syntax_error),
            passed=0,
            total=total,
        )
    passed, first = 0, None
    for index in range(total):
        ok, reason, detail = _check_one(spec, expected[index], report.outcomes.get(index), run)
        passed += ok
        if not ok and first is None:
            first = (reason, f"test {index}: {detail}")
    if first is None and not run.channel:
        first = _run_failure(run)
    if first is None:
        return Verdict(correct=True, reason="passed", extracted=program, passed=passed, total=total)
    reason, detail = first
    if reason == "sandbox_error":
        return Verdict(correct=None, reason=reason, extracted=program, detail=_cap(detail))
    return Verdict(
        correct=False, reason=reason, extracted=program, detail=_cap(detail), passed=passed, total=total
    )


def _check_one(
    spec: CodeTests, expected: Any, outcome: _Outcome | None, run: SandboxRun
) -> tuple[bool, str, str]:
    if outcome is None:
        return (False, *_run_failure(run))
    if outcome.status == "timeout":
        return False, "timeout", outcome.detail
    if outcome.status != "ok":
        return False, "runtime_error", outcome.detail or outcome.status
    if isinstance(spec, StdioTests):
        if stdout_matches(expected, outcome.stdout):
            return True, "passed", ""
        return False, "failed_test", f"expected {_brief(expected)}, got {_brief(outcome.stdout)}"
    actual = as_json_shape(outcome.value) if spec.outputs is not None else outcome.value
    if isinstance(actual, harness.Digest) != isinstance(expected, harness.Digest):
        # One side is huge: compare both as digests (the small side cannot match a huge one anyway,
        # but an explicit huge expected output can match a digest of the same value).
        actual, expected = _as_digest(actual), _as_digest(expected)
    if outputs_match(expected, actual, spec.atol, spec.oracle):
        return True, "passed", ""
    return False, "failed_test", f"expected {_brief(expected)}, got {_brief(outcome.value)}"


def _as_digest(value: Any) -> Any:
    if isinstance(value, harness.Digest) or not isinstance(value, (list, tuple, set, frozenset, dict)):
        return value
    return harness.Digest.of(value)


def _run_failure(run: SandboxRun) -> tuple[str, str]:
    """Why a test has no result, from how the run as a whole ended."""
    if run.overflow:
        return "output_limit", f"{run.overflow} exceeded its size cap"
    if run.timed_out:
        return "timeout", "wall-clock limit of the run exceeded"
    if not run.channel and run.exit_code not in (0, None):
        tail = run.stderr.decode("utf-8", errors="replace")[-300:]
        return "sandbox_error", f"sandbox exited with {run.exit_code} before the harness reported: {tail}"
    return "runtime_error", "no result for this test (the program ended the harness or its worker)"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _cap(text: str) -> str:
    return text if len(text) <= _DETAIL_CAP else text[: _DETAIL_CAP - 3] + "..."
