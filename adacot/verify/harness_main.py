"""The in-sandbox test runner: the second half of the sandbox's script (see adacot.verify.harness).

Runs only in the sandbox (adacot.verify.code imports this module just for its file path): the
script there is adacot.verify.harness followed by this file, as one text. It loads `job.json` and
`program.py` from its working directory, runs the tests and writes one JSON record per test to the
result channel (fd in sys.argv[1]). Names from the first half (`decode`, `encode_result`) are globals
of that one script; the TYPE_CHECKING import below only tells the type checker where they come from,
so nothing here imports adacot at run time. Standard library only, and no
`from __future__ import annotations`: a future import must open a file, and this text comes second
(the first half's future import covers the whole script).

Trust layout. The harness process never executes candidate code: it compiles the program (a syntax
error is reported as such), then forks a worker that runs the program and the tests from index k on,
sending back one line per test over a private pipe (the harness forwards the records it has in one
write before it waits again, never holding one back while a test runs). The worker closes the result
channel first, so the program can neither write to it nor keep it open. When the worker dies, hangs
past the per-test limit or sends garbage, the harness records that test as failed and starts a new
worker at the next test (after a timeout it stops: further tests are not run, which keeps a looping
program from costing n * limit). Expected outputs never enter the sandbox: the parent compares the
values it receives with values it holds, using its own comparison, so patching `__eq__`, builtins or
the harness's modules only changes what the program returns, never the verdict. In stdin/stdout mode
each test runs in its own forked process with files on fds 0/1/2, like a judge, and the harness
reports the captured stdout.
"""

import contextlib
import json
import os
import selectors
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adacot.verify.harness import decode, encode_result

_DETAIL_CAP = 1000
_FLUSH_BYTES = 1 << 16


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_CAP else text[: _DETAIL_CAP - 3] + "..."


class _Harness:
    def __init__(self, channel_fd: int, job: dict[str, Any], code: Any) -> None:
        self.channel, self.job, self.code = channel_fd, job, code
        self.n = len(job["inputs"])
        self.test_seconds = float(job["test_seconds"])
        self.record_cap = int(job["record_bytes"])
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def emit(self, record: dict[str, Any]) -> None:
        """Queue one record; `flush` writes the queue before the harness waits for anything, so a
        record is never held back while a test runs (one write per batch instead of per test)."""
        self.emit_line((json.dumps(record) + "\n").encode())

    def emit_line(self, data: bytes) -> None:
        """Queue one record line as it is (see `emit`)."""
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes > _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        view = memoryview(b"".join(self.pending))
        self.pending, self.pending_bytes = [], 0
        while view:
            view = view[os.write(self.channel, view) :]

    def run(self) -> None:
        self.emit({"event": "start", "n": self.n})
        index = 0
        try:
            while index < self.n:
                index = self.run_stdio(index) if self.job["mode"] == "stdio" else self.run_calls(index)
            self.emit({"event": "done"})
        finally:
            self.flush()

    def spawn(self, body: Any) -> tuple[int, int]:
        """Fork a worker running body(write_fd); return (pid, read end of its pipe)."""
        self.flush()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            os.close(self.channel)
            os.setpgid(0, 0)
            try:
                body(write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        return pid, read_fd

    def run_calls(self, start: int) -> int:
        pid, read_fd = self.spawn(lambda fd: _call_worker(self.code, self.job, start, fd))
        expected, status = start, None
        for line, status in _lines(read_fd, self.test_seconds, self.record_cap, before_wait=self.flush):
            if line is None:
                break
            if _ok_line(line, expected):
                self.emit_line(line + b"\n")
                expected += 1
                if expected == self.n:
                    break
                continue
            record = _parse_record(line, expected)
            self.emit(record)
            if record.get("status") == "garbled":
                status = "garbled"
                break
            expected += 1
            if expected == self.n:
                break
        _reap(pid, read_fd)
        if expected == self.n:
            return self.n
        self.emit({"i": expected, "status": status or "crashed", "detail": _why(status)})
        return self.n if status == "timeout" else expected + 1

    def run_stdio(self, index: int) -> int:
        with open("stdin.txt", "w", encoding="utf-8") as handle:
            handle.write(self.job["inputs"][index])
        pid, read_fd = self.spawn(lambda fd: _stdio_worker(self.code, fd))
        status = None
        started = time.monotonic()
        for _line, last in _lines(read_fd, self.test_seconds, self.record_cap, per_line=False):
            status = last
        # EOF on the pipe comes a moment before the worker becomes waitable: wait for its real status.
        left = self.test_seconds - (time.monotonic() - started)
        exit_code = _wait_exit(pid, left) if status is None else None
        _reap(pid, read_fd)
        if status == "timeout" or exit_code is None:
            self.emit({"i": index, "status": "timeout", "detail": _why(status)})
            return self.n
        stdout, stderr = _read_capped("stdout.txt", self.record_cap), _read_capped("stderr.txt", 4000)
        if exit_code != 0:
            detail = _short(f"exit status {exit_code}: {stderr[-_DETAIL_CAP:]}")
            self.emit({"i": index, "status": "error", "detail": detail})
        else:
            self.emit({"i": index, "status": "ok", "stdout": stdout})
        return index + 1


def _why(status: str | None) -> str:
    return {
        "timeout": "time limit per test exceeded",
        "too_large": "result exceeded the size cap",
        "garbled": "worker sent a malformed record",
    }.get(status or "", "worker exited without a result")


def _lines(read_fd: int, seconds: float, cap: int, per_line: bool = True, before_wait: Any = None) -> Any:
    """Yield (line, None) per record from the worker; end with (None, status) on EOF/timeout/cap.

    With per_line the deadline restarts with every record (the limit is per test); in stdin/stdout
    mode it does not, since the program itself holds the pipe and could otherwise extend its time."""
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    buffer, deadline = b"", time.monotonic() + seconds
    try:
        while True:
            if before_wait is not None:
                before_wait()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                yield None, "timeout"
                return
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                yield None, None
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if per_line:
                    deadline = time.monotonic() + seconds
                yield line, None
            if len(buffer) > cap:
                yield None, "too_large"
                return
    finally:
        selector.close()


def _ok_line(line: bytes, expected: int) -> bool:
    """A result line in the worker's own layout, for the test expected next: forwarded unparsed.

    A value can be megabytes of JSON; parsing and re-encoding it here cost more than the program's
    run (MBPP+'s Mbpp/630). The parent parses every line anyway and compares the values it finds
    with values it holds, so a line that only looks right (bad JSON after the prefix, extra keys)
    can make its own test fail, never pass another."""
    return line.startswith(b'{"i": %d, "status": "ok", "value": ' % expected) and line.endswith(b"}")


def _parse_record(line: bytes, expected: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
        ok = isinstance(record, dict) and record.get("i") == expected
        ok = ok and record.get("status") in ("ok", "error")
    except ValueError:
        ok = False
    if not ok:
        return {"i": expected, "status": "garbled", "detail": _why("garbled")}
    return {
        "i": expected,
        "status": record["status"],
        "value": record.get("value"),
        "detail": _short(str(record.get("detail", ""))),
    }


def _wait_exit(pid: int, seconds: float) -> int | None:
    """The worker's exit code, or None when it is still running after `seconds`."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        selector = selectors.DefaultSelector()
        selector.register(pidfd, selectors.EVENT_READ)
        selector.select(max(seconds, 0.0))
        selector.close()
        os.close(pidfd)
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def _reap(pid: int, read_fd: int) -> None:
    """Kill the worker's process group and collect it (if not collected yet) and any orphans."""
    os.close(read_fd)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # already collected by _wait_exit
        os.waitpid(pid, 0)
    # Orphans re-parented to us (we may be PID 1 of the namespace) are reaped too.
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _read_capped(path: str, cap: int) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(cap).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _call_worker(code: Any, job: dict[str, Any], start: int, fd: int) -> None:
    """Runs in the worker: candidate code from here on."""
    write, dumps, n = os.write, json.dumps, len(job["inputs"])
    inputs = [decode(args) for args in job["inputs"][start:]]
    namespace: dict[str, Any] = {"__name__": "__candidate__"}
    try:
        exec(code, namespace)
        function = namespace[job["entry_point"]]
    except BaseException as exc:
        line = _error_line(exc, f"loading the program (entry point {job['entry_point']!r})")
        for index in range(start, n):
            write(fd, (dumps({"i": index, "status": "error", "detail": line}) + "\n").encode())
        return
    for offset, args in enumerate(inputs):
        index = start + offset
        try:  # keys in this order: `_ok_line` recognises the layout
            record = {"i": index, "status": "ok", "value": encode_result(function(*args))}
        except BaseException as exc:
            record = {"i": index, "status": "error", "detail": _error_line(exc, "")}
        data = (dumps(record) + "\n").encode()
        while data:
            data = data[write(fd, data) :]


def _error_line(exc: BaseException, context: str) -> str:
    import traceback  # only on errors: every sandbox start pays for eager imports

    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return _short(f"{context + ': ' if context else ''}{text}")


def _stdio_worker(code: Any, fd: int) -> None:
    """Runs in the worker: one stdin/stdout execution with real files on fds 0, 1, 2.

    `fd` stays open until exit: its EOF tells the harness the execution is over."""
    for target, path, flags in (
        (0, "stdin.txt", os.O_RDONLY),
        (1, "stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, target)
        os.close(opened)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    status = 0
    try:
        exec(code, {"__name__": "__main__"})
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        sys.__excepthook__(*sys.exc_info())  # C-level printing: no traceback import per test
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 1
    os._exit(status if 0 <= status < 256 else 1)


def main() -> None:
    channel = int(sys.argv[1])
    os.set_inheritable(channel, False)
    with open("job.json", encoding="utf-8") as handle:
        job = json.load(handle)
    with open("program.py", encoding="utf-8", errors="replace") as handle:
        source = handle.read()
    harness = _Harness(channel, job, None)
    try:
        harness.code = compile(source, "program.py", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        harness.emit({"event": "syntax_error", "detail": _error_line(exc, "")})
        harness.flush()
        return
    harness.run()


if __name__ == "__main__":
    main()
