"""The heavy-tailed teacher case of benchmarks/distill.py: does the distillation stage keep the slots full?

A local OpenAI-compatible teacher (`TailTeacher`, threads of http.server) answers every question after a
delay drawn per question from a log-normal (median 0.3 s, sigma 1, seeded by the question: the same
question waits as long in every run), the shape of long chain-of-thought lengths: most answers quick, a
few several seconds. Its answers are right (an echo of the question's own "</think> ... \\boxed{v}"),
so every question takes one round and the work is the same for every client.

The whole DistillationJob runs (`run_distillation_job`: plan, teacher, verification, merge, exports),
twice per repeat in alternation:
- continuous: the product path (OpenAIGenerator's `stream`, one record appended per question);
- batches: the same generator with `stream` hidden, so the stage takes its batch-engine path (chunks of
  2 x concurrency, each waiting for its slowest answer): how the stage dispatched before.

Figures: wall time of the job and of the teacher phase (first request to last answer, server side) over
the ideal max(sum of answer times / concurrency, longest answer); mean busy slots = sum of the time the
server held requests / teacher phase. Then the kill case: the job runs in a subprocess, is SIGKILLed
once half its records are logged, and is resumed; the manifest's usage is compared with the server's
count of answered requests (the ones the kill cut off are listed apart: spent, but in no record).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from bench_support import ROOT

MEDIAN_S, SIGMA = 0.3, 1.0


def answer_time(prompt: str, seed: int) -> float:
    """Seconds the teacher takes for this prompt: log-normal, fixed per (prompt, seed)."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return random.Random(digest).lognormvariate(math.log(MEDIAN_S), SIGMA)


def fifo_bound(times: Sequence[float], concurrency: int) -> float:
    """The makespan of perfect continuous dispatch in queue order with zero overhead: each prompt goes
    to the first free slot. The ideal max(sum / concurrency, longest) assumes the long answers are
    started first, which a client that cannot know answer times in advance cannot do."""
    slots = [0.0] * concurrency
    for seconds in times:
        heapq.heappush(slots, heapq.heappop(slots) + seconds)
    return max(slots)


def question_text(index: int) -> str:
    return f"Q{index}: add {index} and {index}. </think> So \\boxed{{{2 * index}}}"


@dataclass
class TailTeacher:
    """The heavy-tailed teacher server; records (arrival, reply) per request, server side."""

    seed: int
    spans: list[tuple[float, float | None]] = field(default_factory=list)
    answer_first: int | None = None
    """When set, only the first `answer_first` requests are answered; later ones are held until
    `reset()` (the kill case: the job is killed with them in flight)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> TailTeacher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def begin(self) -> tuple[list[tuple[float, float | None]], int]:
        """The request's entry (the list it is in: a reset starts a new one); held when past answer_first."""
        with self._lock:
            spans, opened = self.spans, self._open
            spans.append((time.monotonic(), None))
            slot = len(spans) - 1
        if self.answer_first is not None and slot >= self.answer_first:
            opened.wait()
        return spans, slot

    def end(self, entry: tuple[list[tuple[float, float | None]], int]) -> None:
        spans, slot = entry
        with self._lock:
            spans[slot] = (spans[slot][0], time.monotonic())

    def reset(self) -> None:
        self._open.set()  # held requests go (to a killed client: nobody reads them)
        with self._lock:
            self.spans, self.answer_first = [], None
            self._open = threading.Event()


def _handler(server: TailTeacher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # /v1/models: the stage's reachability probe
            self._send({"object": "list", "data": [{"id": "tail", "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = body["messages"][-1]["content"]
            entry = server.begin()
            time.sleep(answer_time(prompt, server.seed))
            text = f"answer: {prompt}"
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
            self._send({"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage})
            server.end(entry)

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# ------------------------------------------------------------------------------------------ the job


def write_inputs(root: Path, questions: int, concurrency: int, url: str) -> tuple[Path, Path]:
    """A bank of `questions` echo questions and a DistillationJob YAML against `url`; (bank, spec)."""
    from adacot.api.distillation_job import DistillationJob
    from adacot.artifacts.manifest import Manifest
    from adacot.artifacts.rows import BankEntry, Question
    from adacot.artifacts.store import ArtifactDir

    entries = [
        BankEntry(
            question=Question(
                id=f"t{i:04d}", task="math", problem=question_text(i), answer=str(2 * i), source="bench"
            ),
            level=1,
            model="tiny",
            origin="bench",
        )
        for i in range(questions)
    ]
    bank = ArtifactDir(root / "bank").prepare()
    bank.write_shard("part-00000.jsonl", entries, BankEntry)
    bank.finalize(Manifest(kind="DifficultyBank", name="bank"))
    endpoint = {"url": url, "model": "tail", "concurrency": concurrency, "timeoutSeconds": 120}
    spec = {
        "bankRef": {"name": "bank"},
        "distribution": {"table": {"1": 1}},
        "size": questions,
        "teacher": {"endpoint": endpoint, "maxAttempts": 1, "prompt": {"instruction": ""}},
        "verification": {"workers": 1},
    }
    job = DistillationJob.model_validate(
        {"kind": "DistillationJob", "metadata": {"name": "tail"}, "spec": spec}
    )
    path = root / "tail.yaml"
    path.write_text(yaml.safe_dump(job.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return bank.root, path


class BatchOnly:
    """OpenAIGenerator without `stream`: the stage then dispatches in chunks, as it did before."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.usage = inner, inner.usage

    def generate(self, prompts: Sequence[Any], sampling: Any) -> Iterator[Any]:
        return self._inner.generate(prompts, sampling)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._inner.close()


def run_job(spec_path: Path, bank: Path, out: Path, *, continuous: bool) -> float:
    """Seconds of one whole DistillationJob."""
    from adacot.api.distillation_job import DistillationJob
    from adacot.api.loader import load_resources
    from adacot.backends.openai_http import OpenAIGenerator
    from adacot.pipelines.distillation_job import run_distillation_job

    resource = load_resources(spec_path)[0]
    assert isinstance(resource, DistillationJob) and resource.spec.teacher.endpoint is not None
    endpoint = resource.spec.teacher.endpoint

    def teacher() -> Any:
        made = OpenAIGenerator(endpoint)
        return made if continuous else BatchOnly(made)

    began = time.perf_counter()
    run_distillation_job(resource, out, bank_dir=bank, generator=teacher)
    return time.perf_counter() - began


def phase(spans: list[tuple[float, float | None]]) -> dict[str, float]:
    """Teacher phase (first arrival to last reply), busy time, mean busy slots, server side."""
    done = [(a, r) for a, r in spans if r is not None]
    span = max(r for _, r in done) - min(a for a, _ in done)
    busy = sum(r - a for a, r in done)
    return {"teacher_phase_s": span, "busy_s": busy, "mean_busy_slots": busy / span}


def measure(root: Path, args: Any) -> dict[str, Any]:
    """The alternating runs and the kill case (see the module docstring)."""
    times = [answer_time(question_text(i), args.tail_seed) for i in range(args.tail_questions)]
    ideal = max(sum(times) / args.tail_concurrency, max(times))
    fifo = fifo_bound(times, args.tail_concurrency)
    runs: dict[str, list[dict[str, float]]] = {"continuous": [], "batches": []}
    with TailTeacher(args.tail_seed) as teacher:
        bank, spec = write_inputs(root, args.tail_questions, args.tail_concurrency, teacher.url)
        for repeat in range(args.tail_repeats):
            for name in ("batches", "continuous"):
                teacher.reset()
                load = os.getloadavg()[0]
                wall = run_job(spec, bank, root / f"{name}-{repeat}", continuous=name == "continuous")
                figures = phase(teacher.spans)
                runs[name].append({"wall_s": wall, **figures, "load_1m": load})
        teacher.reset()
        killed = kill_and_resume(root, spec, bank, teacher, args.tail_questions)
    median = {name: _median(r) for name, r in runs.items()}
    return {
        "settings": {
            "questions": args.tail_questions,
            "concurrency": args.tail_concurrency,
            "median_s": MEDIAN_S,
            "sigma": SIGMA,
            "seed": args.tail_seed,
            "repeats": args.tail_repeats,
        },
        "answer_times": {"sum_s": sum(times), "longest_s": max(times), "mean_s": statistics.mean(times)},
        "ideal_s": ideal,
        "fifo_bound_s": fifo,
        "fifo_bound_ratio_to_ideal": fifo / ideal,
        "runs": runs,
        "median": median,
        "ratio_to_ideal": {name: m["wall_s"] / ideal for name, m in median.items()},
        "teacher_phase_ratio_to_ideal": {name: m["teacher_phase_s"] / ideal for name, m in median.items()},
        "kill": killed,
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]


WORKER = """
import sys
sys.path.insert(0, {bench!r})
from pathlib import Path
from teacher_tail import run_job

if __name__ == "__main__":  # the verifier's worker processes are spawned: they re-import this file
    run_job(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), continuous=True)
"""


def kill_and_resume(
    root: Path, spec: Path, bank: Path, teacher: TailTeacher, questions: int
) -> dict[str, Any]:
    """SIGKILL the job once half its records are logged, resume it, compare usage with the server."""
    from adacot.artifacts.manifest import read_manifest
    from adacot.artifacts.rows import DistilledQuestion
    from adacot.artifacts.store import read_records

    script = root / "tail_worker.py"
    script.write_text(WORKER.format(bench=str(ROOT / "benchmarks")))
    out = root / "killed"
    log = out / "records" / "_work" / "log-00000-of-00001.jsonl"
    teacher.answer_first = questions // 2  # the rest is held: in flight when the kill comes
    proc = subprocess.Popen([sys.executable, str(script), str(spec), str(bank), str(out)])
    deadline = time.monotonic() + 600
    while not (log.is_file() and len(log.read_text().splitlines()) >= questions // 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the job to kill ended or stalled before half its records were logged")
        time.sleep(0.05)  # polling a condition; the deadline only stops a hang
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    logged = len(log.read_text().splitlines())
    sent_before_kill = len(teacher.spans)
    in_flight = sum(1 for _, reply in teacher.spans if reply is None)
    teacher.reset()
    run_job(spec, bank, out, continuous=True)
    usage = read_manifest(out / "records").metrics["usage"]
    records = list(read_records(out / "records", DistilledQuestion))
    return {
        "logged_at_kill": logged,
        "records": len(records),
        "distinct_records": len({r.question_id for r in records}),
        "manifest_requests": usage["requests"],
        "sum_of_record_requests": sum((r.usage or {}).get("requests", 0) for r in records),
        "server_requests_before_kill": sent_before_kill,
        "server_requests_after_resume": len(teacher.spans),
        "in_flight_at_kill": in_flight,
        "spent_but_in_no_record": sent_before_kill + len(teacher.spans) - usage["requests"],
        "manifest_completion_tokens": usage["completion_tokens"],
        "sum_of_attempt_completion_tokens": sum(
            a.completion_tokens or 0 for r in records for a in r.attempts
        ),
    }
