"""A process pool whose every call has a hard wall-clock bound.

Used by `adacot.verify.math.MathVerifier` (and open to any verifier whose work can hang inside C code,
where no signal or flag can stop it: sympy raising `9^{9^{9^9}}` spends minutes in one big-integer
multiplication). Built on pebble's `ProcessPool`, which kills a worker that overruns its task's
timeout and starts a fresh one, so one pathological call costs one worker restart and the others go on.

Workers start with the 'spawn' method by default: the callers of verifiers (grading, distillation)
hold threads, HTTP clients and vLLM engines, and forking such a process is unsafe.

Limits: the bound is per call and starts when a worker picks the call up (queueing time does not
count); a restart costs one interpreter start plus the `initializer` (about a second with sympy).
Arguments and results cross a pipe, so they must pickle.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, Literal, TypeVar

from pebble import ProcessExpired, ProcessPool

T = TypeVar("T")
R = TypeVar("R")


class TimeBoundedPool(Generic[R]):
    """Runs `fn(*args)` in worker processes; a call past `timeout_s` is killed and replaced.

    `on_timeout(args)` and `on_failure(args, exc)` turn a killed or crashed call into a result, so
    `run` and `run_many` return one result per call and never raise for a single bad call.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        *,
        workers: int,
        timeout_s: float,
        on_timeout: Callable[[tuple[Any, ...]], R],
        on_failure: Callable[[tuple[Any, ...], BaseException], R],
        initializer: Callable[[], object] | None = None,
        start_method: Literal["spawn", "forkserver"] = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.workers = workers
        self.timeout_s = timeout_s
        self._fn = fn
        self._on_timeout = on_timeout
        self._on_failure = on_failure
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=initializer,
            context=multiprocessing.get_context(start_method),
        )

    def _submit(self, args: tuple[Any, ...], timeout_s: float | None = None) -> Future[R]:
        return self._pool.schedule(self._fn, args=args, timeout=timeout_s or self.timeout_s)

    def _collect(self, args: tuple[Any, ...], future: Future[R]) -> R:
        try:
            return future.result()
        except FutureTimeout:
            return self._on_timeout(args)
        except ProcessExpired as exc:  # the worker died (OOM killer, segfault): a failed call, not a hang
            return self._on_failure(args, exc)
        except Exception as exc:
            return self._on_failure(args, exc)

    def run(self, *args: Any, timeout_s: float | None = None) -> R:
        """One call, waited for (bounded by `timeout_s` when given, else the pool's)."""
        return self._collect(args, self._submit(args, timeout_s))

    def run_many(self, calls: Iterable[tuple[Any, ...]], max_in_flight: int | None = None) -> Iterator[R]:
        """Results in input order, streaming; at most `max_in_flight` calls are queued or running.

        The bound keeps memory flat on million-row inputs and lets the caller stop early.
        """
        for _, result in self.run_many_with_args(calls, max_in_flight):
            yield result

    def run_many_with_args(
        self, calls: Iterable[tuple[Any, ...]], max_in_flight: int | None = None
    ) -> Iterator[tuple[tuple[Any, ...], R]]:
        """`run_many`, each result paired with the arguments of its call."""
        limit = max_in_flight or 4 * self.workers
        window: deque[tuple[tuple[Any, ...], Future[R]]] = deque()
        try:
            for args in calls:
                window.append((args, self._submit(args)))
                if len(window) >= limit:
                    done_args, future = window.popleft()
                    yield done_args, self._collect(done_args, future)
            while window:
                done_args, future = window.popleft()
                yield done_args, self._collect(done_args, future)
        finally:
            # The caller stopped early (break, exception): drop the calls nobody will read.
            for _, future in window:
                future.cancel()

    def close(self) -> None:
        """Wait for running calls, then stop the workers."""
        self._pool.close()  # type: ignore[no-untyped-call]
        self._pool.join()

    def terminate(self) -> None:
        """Stop the workers now, abandoning running calls."""
        self._pool.stop()  # type: ignore[no-untyped-call]
        self._pool.join()
