"""The in-sandbox test harness, and the value encoding it shares with the parent.

Two roles, one file, standard library only:
  * run as the sandbox's script (adacot.verify.code reads this file's text and hands it to
    adacot.verify.sandbox), it loads `job.json` and `program.py` from its working directory, runs the
    tests and writes one JSON record per test to the result channel (fd in sys.argv[1]);
  * imported by adacot.verify.code, it provides `encode` (inputs going in) and `decode` (return values
    coming out).

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

Encoding (`encode`/`decode`): plain JSON for None, bool, int (big ones as hex), float (NaN and
Infinity allowed), str; single-key objects tag containers and the rest: {"#l": [...]} list,
{"#t": [...]} tuple, {"#s": [...]} set, {"#f": [...]} frozenset, {"#d": [[k, v], ...]} dict,
{"#c": [re, im]} complex, {"#b": "hex"} bytes, {"#i": "hex"} int, {"#r": [type, repr]} anything else
(compared by type name and repr). Subclasses are reduced to their builtin base (a namedtuple is a
tuple), so a user type cannot smuggle its own `__eq__` to the parent. Never pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_REPR_CAP = 2000
_DETAIL_CAP = 1000
_BIG_INT = 10**1000
_SCALARS = (type(None), bool, str, float)
DIGEST_OVER = 250_000
"""A return value with more elements than this (all levels counted) travels as a Digest."""
_DIGEST_CHUNK = 4096
_FLUSH_BYTES = 1 << 16


def encode(value: Any) -> Any:
    """Turn a value into the tagged JSON form; raises TypeError/RecursionError on what cannot be."""
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        return number if -_BIG_INT < number < _BIG_INT else {"#i": hex(number)}
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return _encode_container(value)


def _encode_container(value: Any) -> Any:
    kinds: tuple[tuple[Any, str], ...] = ((list, "#l"), (tuple, "#t"), (set, "#s"), (frozenset, "#f"))
    for kind, tag in kinds:
        if isinstance(value, kind):
            return {tag: [encode(item) for item in kind.__iter__(value)]}
    if isinstance(value, dict):
        return {"#d": [[encode(k), encode(v)] for k, v in dict.items(value)]}
    if isinstance(value, complex):
        return {"#c": [complex(value).real, complex(value).imag]}
    if isinstance(value, (bytes, bytearray)):
        return {"#b": bytes(value).hex()}
    return {"#r": [type(value).__name__, repr(value)[:_REPR_CAP]]}


def encode_result(value: Any) -> Any:
    """`encode`, except that a huge container becomes {"#h": [type, len, sha256]} (see Digest)."""
    if isinstance(value, (list, tuple, set, frozenset, dict)) and _exceeds(value, DIGEST_OVER):
        digest = Digest.of(value)
        return {"#h": [digest.type_name, digest.size, digest.sha256]}
    return encode(value)


def _exceeds(value: Any, budget: int) -> bool:
    """Whether `value` holds more than `budget` elements; stops counting as soon as it does."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple, set, frozenset, dict)):
            seen += len(item)
            if seen > budget:
                return True
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False


class Digest:
    """A huge value known by its builtin type, length and the sha256 of its repr, taken in chunks.

    Values of millions of elements (MBPP+'s Mbpp/255 returns up to 1.66 million 77-tuples) would
    exceed the result channel's cap as tagged JSON; both sides reduce them to this instead, and two
    Digests are equal only when the reprs are identical. That is exact equality without EvalPlus's
    float tolerance, and order-sensitive for sets and dicts - a documented limit for huge values only.
    """

    __slots__ = ("sha256", "size", "type_name")

    def __init__(self, type_name: str, size: int, sha256: str) -> None:
        self.type_name, self.size, self.sha256 = type_name, size, sha256

    @classmethod
    def of(cls, value: Any) -> Digest:
        import hashlib

        kind = next(k for k in (list, tuple, set, frozenset, dict) if isinstance(value, k))
        items = list(dict.items(value)) if kind is dict else list(kind.__iter__(value))
        hasher = hashlib.sha256()
        for start in range(0, len(items), _DIGEST_CHUNK):
            hasher.update(repr(items[start : start + _DIGEST_CHUNK]).encode("utf-8", "surrogatepass"))
        return cls(kind.__name__, len(items), hasher.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and (self.type_name, self.size, self.sha256) == (
            other.type_name,
            other.size,
            other.sha256,
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.size, self.sha256))

    def __repr__(self) -> str:
        return f"<{self.type_name} of {self.size} items, sha256 {self.sha256[:12]}>"


class Opaque:
    """A value the encoding has no tag for, known by its type name and repr."""

    __slots__ = ("text", "type_name")

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.type_name, self.text) == (other.type_name, other.text)

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>"


def decode(data: Any) -> Any:
    """Inverse of `encode`; raises ValueError on anything that is not a well-formed encoding."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if not (isinstance(data, dict) and len(data) == 1):
        raise ValueError(f"not an encoded value: {str(data)[:80]}")
    ((tag, body),) = data.items()
    try:
        return _DECODERS[tag](body)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"bad encoded value under {tag!r}: {exc}") from exc


_DECODERS: dict[str, Any] = {
    "#l": lambda body: [decode(item) for item in body],
    "#t": lambda body: tuple(decode(item) for item in body),
    "#s": lambda body: {decode(item) for item in body},
    "#f": lambda body: frozenset(decode(item) for item in body),
    "#d": lambda body: {decode(k): decode(v) for k, v in body},
    "#c": lambda body: complex(float(body[0]), float(body[1])),
    "#b": lambda body: bytes.fromhex(body),
    "#i": lambda body: int(body, 16),
    "#r": lambda body: Opaque(str(body[0]), str(body[1])),
    "#h": lambda body: Digest(str(body[0]), int(body[1]), str(body[2])),
}


# ----------------------------------------------------------------------------- in-sandbox side


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
        data = (json.dumps(record) + "\n").encode()
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
        try:
            record = {"status": "ok", "value": encode_result(function(*args))}
        except BaseException as exc:
            record = {"status": "error", "detail": _error_line(exc, "")}
        record["i"] = start + offset
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
