"""The math Result-Verifier: is the final answer of a response equivalent to the reference?

Callers: grading (is the student right?), distillation (keep only correct teacher CoT), evaluation,
and `adacot verify math`. `verify_math` checks one pair in the calling process; `MathVerifier` runs
checks in worker processes, each under a hard wall-clock bound, which is what stages should use.

Pipeline: `math_extract` finds the answer span after the reasoning (`</think>`, Sky-T1's
`<|begin_of_solution|>`; a trace cut off inside its reasoning has none): the last `\\boxed{}`, `#### n`,
"the answer is ...", the final statement read whole; `answer_latex` rewrites what math-verify would
misread (ordinals, E notation, unit words, trailing conditions); math-verify parses span and
reference into sympy and decides equivalence (fractions vs decimals, intervals, sets in any order,
tuples, matrices, percent, degrees, `\\text{}` and units, `x=3` vs `3`, thousands separators). A
Verdict is returned for every input, never an exception:
  correct=True  reason=equivalent
  correct=False reason=not_equivalent | no_answer
  correct=None  reason=gold_unparseable | timeout | error   (undecided: reported, never counted)
`detail` says how the answer was found; `last_number` marks the weak fallback.

Limits: math-verify's own timeouts use SIGALRM, work only in the main thread, and turn a timeout into
a silent `False`, so we switch them off and bound time ourselves: in-process with a SIGALRM deadline
(main thread only; it cannot interrupt a long C call such as a huge integer power), in `MathVerifier`
with a worker kill, which can. Equivalence is math-verify's: symbolic, with float rounding to 6
places, so 0.333333 equals 1/3.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from adacot.artifacts.rows import Verdict
from adacot.verify.math_extract import Extraction, as_latex, extract_answer, gold_answer, why_no_answer
from adacot.verify.pool import TimeBoundedPool

_PARSE_CONFIG: Sequence[LatexExtractionConfig | ExprExtractionConfig] = (
    LatexExtractionConfig(boxed_match_priority=0),
    ExprExtractionConfig(),
)
_DETAIL_CAP = 300
# In a worker the soft (SIGALRM) deadline fires first, so most slow checks end as a cheap timeout
# Verdict; the hard kill, at the full bound, is for calls stuck in C code.
_SOFT_SHARE = 0.8


class _DeadlineExceeded(BaseException):
    """Raised by our SIGALRM handler; a BaseException so math-verify's `except Exception` lets it by."""


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once per process that its timeout is off: we bound time ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise _DeadlineExceeded after `seconds` (main thread only; elsewhere no bound)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _fire(signum: int, frame: object) -> None:
        raise _DeadlineExceeded

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def parse_answer(span: str) -> list[Any]:
    """math-verify's parse of one answer span: sympy objects, then the normalised string."""
    return list(parse("\\boxed{" + as_latex(span) + "}", _PARSE_CONFIG, parsing_timeout=None))


def _method_detail(extraction: Extraction) -> str:
    if extraction.method == "last_number":
        return "no boxed or stated answer: fell back to the last number in the response"
    return f"answer found by {extraction.method}"


def _decide(extraction: Extraction | None, gold: str, response: str) -> Verdict:
    extracted = extraction.text if extraction else None
    reference = parse_answer(gold_answer(gold))
    if not reference:
        return Verdict(
            correct=None,
            reason="gold_unparseable",
            extracted=extracted,
            detail=f"reference does not parse: {gold[-_DETAIL_CAP:]!r}",
        )
    if extraction is None:
        return Verdict(correct=False, reason="no_answer", detail=why_no_answer(response))
    answer = parse_answer(extraction.text)
    if not answer:
        return Verdict(
            correct=False,
            reason="no_answer",
            extracted=extracted,
            detail=f"extracted answer does not parse; {_method_detail(extraction)}",
        )
    # allow_set_relation_comp: a reference interval `(2,\infty)` accepts the inequality `x > 2`.
    same = verify(reference, answer, allow_set_relation_comp=True, timeout_seconds=None)
    return Verdict(
        correct=same,
        reason="equivalent" if same else "not_equivalent",
        extracted=extracted,
        detail=_method_detail(extraction),
    )


def _extracted(response: str) -> str | None:
    extraction = extract_answer(response)
    return extraction.text if extraction else None


def verify_math(response: str, gold: str, *, timeout_s: float | None = 5.0) -> Verdict:
    """Check one response against its reference in this process; never raises.

    `timeout_s` is a soft bound (SIGALRM, main thread only): use `MathVerifier` for a hard one.
    """
    extraction = None
    try:
        extraction = extract_answer(response)  # string work only: cheap, cannot hang
        with _deadline(timeout_s):
            return _decide(extraction, gold, response)
    except _DeadlineExceeded:
        return Verdict(
            correct=None,
            reason="timeout",
            extracted=extraction.text if extraction else None,
            detail=f"check ran past {timeout_s:g} s",
        )
    except Exception as exc:  # a sympy/latex2sympy bug on one sample is data, not a crash
        return Verdict(
            correct=None,
            reason="error",
            extracted=extraction.text if extraction else None,
            detail=f"{type(exc).__name__}: {exc}"[:_DETAIL_CAP],
        )


def _verify_in_worker(batch: Sequence[tuple[str, str]], soft_timeout_s: float) -> list[Verdict]:
    """A batch of checks, each under its own soft deadline (one round trip per batch, not per check)."""
    return [verify_math(response, gold, timeout_s=soft_timeout_s) for response, gold in batch]


class _Lost:
    """A batch the pool killed (hard timeout) or lost (worker crash): what to say if it held one check."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


def _warm_up() -> None:
    """Import and exercise sympy/latex2sympy once, so a worker's first call is not billed for it."""
    verify_math("\\boxed{1/2}", "0.5", timeout_s=None)


def _batches(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class MathVerifier:
    """Math verification in worker processes, each call bounded by `timeout_s` of wall-clock time.

    A worker stuck on a pathological expression is killed and replaced; its call becomes
    Verdict(correct=None, reason="timeout") and the other calls go on. Use as a context manager.
    """

    def __init__(self, workers: int = 1, timeout_s: float = 5.0, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self._pool: TimeBoundedPool[list[Verdict] | _Lost] = TimeBoundedPool(
            _verify_in_worker,
            workers=workers,
            timeout_s=timeout_s * batch_size,
            on_timeout=self._timed_out,
            on_failure=self._failed,
            initializer=_warm_up,
        )

    def _timed_out(self, args: tuple[Any, ...]) -> _Lost:
        detail = f"worker killed after {self.timeout_s:g} s and replaced"
        return _Lost(
            Verdict(correct=None, reason="timeout", extracted=_extracted(args[0][0][0]), detail=detail)
        )

    @staticmethod
    def _failed(args: tuple[Any, ...], exc: BaseException) -> _Lost:
        detail = f"worker failed: {type(exc).__name__}: {exc}"[:_DETAIL_CAP]
        return _Lost(
            Verdict(correct=None, reason="error", extracted=_extracted(args[0][0][0]), detail=detail)
        )

    def verify(self, response: str, gold: str) -> Verdict:
        """One check, waited for, bounded by `timeout_s`."""
        result = self._pool.run([(response, gold)], self.timeout_s * _SOFT_SHARE, timeout_s=self.timeout_s)
        return result.verdict if isinstance(result, _Lost) else result[0]

    def verify_many(self, pairs: Iterable[tuple[str, str]]) -> Iterator[Verdict]:
        """Verdicts for (response, gold) pairs, in input order, streaming, with bounded in-flight work.

        Pairs travel in batches of `batch_size` (the per-call round trip costs as much as a check). A
        batch that the pool had to kill - a check the in-worker deadline could not stop - is checked
        again one by one, so only the stuck check ends as a timeout.
        """
        batches = _batches(pairs, self.batch_size)
        calls = ((batch, self.timeout_s * _SOFT_SHARE) for batch in batches)
        for (batch, _), result in self._pool.run_many_with_args(calls, max_in_flight=2 * self._pool.workers):
            if not isinstance(result, _Lost):
                yield from result
            elif len(batch) == 1:
                yield result.verdict
            else:
                yield from (self.verify(response, gold) for response, gold in batch)

    def close(self) -> None:
        """Let running checks finish, then stop the workers."""
        self._pool.close()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.terminate()
