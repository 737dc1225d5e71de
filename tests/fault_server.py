"""A local OpenAI-compatible server that misbehaves on cue, for the HTTP backend's fault tests.

Each prompt (the last message's content, or the completion prompt) is looked up in `script`: the list of
behaviours its successive attempts get; once the list is used up every further attempt is answered
normally. Every request is recorded server-side (prompt, behaviour, arrival and reply times, the
Authorization header) so tests can count attempts and check the order of events.

Behaviours: ok, reasoning (ok plus reasoning_content), fewer (one choice whatever n asked), 429:<s>
(Retry-After: s), 500, 400 (echoing the Authorization header in its body), stall (no answer until the
client gives up), drop (close the connection without a response), empty (no choices), malformed (a body
that is not JSON), hold (answered normally, but only once `release_after` other requests have been
answered, or `release()` is called, or stall_s has passed; `held_released_by` says which).
The server also counts the requests it holds open at once (`max_in_flight`).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Hit:
    """One request as the server saw it; recorded on arrival, `replied` set once the reply is sent."""

    prompt: str
    behaviour: str
    arrived: float
    authorization: str | None
    replied: float | None = None


@dataclass
class FaultServer:
    script: dict[str, list[str]] = field(default_factory=dict)
    stall_s: float = 10.0
    release_after: int | None = None
    hits: list[Hit] = field(default_factory=list)
    max_in_flight: int = 0
    held_released_by: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = defaultdict(int)
        self._release = threading.Event()
        self._hold = threading.Event()
        self._in_flight = self._answered = 0
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()  # wake stalled handlers so shutdown does not wait for them
        self._hold.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def attempts(self, prompt: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.prompt == prompt]

    def next_behaviour(self, prompt: str) -> str:
        with self._lock:
            attempt = self._attempts[prompt]
            self._attempts[prompt] += 1
        plan = self.script.get(prompt, [])
        return plan[attempt] if attempt < len(plan) else "ok"

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def stall(self) -> None:
        self._release.wait(self.stall_s)

    def arrive(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self, behaviour: str) -> None:
        with self._lock:
            self._in_flight -= 1
            if behaviour != "hold":
                self._answered += 1
            if self.release_after is not None and self._answered >= self.release_after:
                self._hold.set()

    def release(self) -> None:
        self._hold.set()

    def hold(self) -> None:
        released = self._hold.wait(self.stall_s)
        with self._lock:
            self.held_released_by.append("release" if released else "timeout")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts, early stops) leave broken pipes behind; that is expected


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
            behaviour = server.next_behaviour(prompt)
            hit = Hit(prompt, behaviour, arrived, self.headers.get("Authorization"))
            server.record(hit)
            server.arrive()
            try:
                hit.replied = self._act(behaviour, body, prompt)
            finally:
                server.leave(behaviour)

        def _act(self, behaviour: str, body: dict[str, Any], prompt: str) -> float | None:
            if behaviour == "drop":
                self.close_connection = True
                return None
            if behaviour == "hold":
                server.hold()
            if behaviour == "stall":
                server.stall()
                self.close_connection = True
                return None
            if behaviour.startswith("429:"):
                return self._send(429, b'{"error": "slow down"}', {"Retry-After": behaviour[4:]})
            if behaviour == "500":
                return self._send(500, b'{"error": "scripted failure"}')
            if behaviour == "400":
                # Echo the credentials, as some careless servers do: the client must scrub them.
                echo = json.dumps({"error": f"bad request from {self.headers.get('Authorization')}"})
                return self._send(400, echo.encode())
            if behaviour == "malformed":
                return self._send(200, b'{"choices": [ {"message": ')
            if behaviour == "empty":
                return self._send(200, json.dumps({"choices": [], "usage": {}}).encode())
            return self._send(200, json.dumps(_answer(behaviour, body, prompt)).encode())

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> float:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            replied = time.monotonic()
            self.wfile.write(payload)
            return replied

    return Handler


def _answer(behaviour: str, body: dict[str, Any], prompt: str) -> dict[str, Any]:
    n = 1 if behaviour == "fewer" else int(body.get("n", 1))
    chat = "messages" in body
    choices = []
    for i in range(n):
        text = f"answer to {prompt} (seed {body.get('seed')}, choice {i})"
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if behaviour == "reasoning":
                message["reasoning_content"] = f"thinking about {prompt}"
            choices.append({"index": i, "message": message, "finish_reason": "stop"})
        else:
            choices.append({"index": i, "text": text, "finish_reason": "length"})
    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 7 * n, "total_tokens": 0}
    return {
        "id": "x",
        "object": "chat.completion" if chat else "text_completion",
        "choices": choices,
        "usage": usage,
    }


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str], limit_s: float = 120) -> None:
    """For kill-and-resume tests against this server: until the shard log holds `count` records (a
    condition, polled; the limit only stops a hang)."""
    deadline = time.monotonic() + limit_s
    while not (path.is_file() and len(path.read_text().splitlines()) >= count):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"{path}: fewer than {count} records after {limit_s}s"
        time.sleep(0.05)
