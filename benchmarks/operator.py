"""Operator cost: reconcile latency, API requests per reconcile and memory, against the API emulator.

    python benchmarks/operator.py [--sequential 20] [--burst 50] [--resources 500] [--quick]

Starts the API emulator (tests/kube, `start_emulator`, its own process) and the operator as a real
`kopf run -m adacot_operator.handlers --standalone --all-namespaces` process, the way
tests/integration/test_operator_smoke.py does, then measures with the sample GradingRun:

1. create -> Job created: the time from the create request returning to the Job's ADDED event on a
   watch of Jobs opened beforehand; for `--sequential` resources created one at a time (each waits for
   its Job) and for `--burst` resources created back to back.
2. Job done -> phase Succeeded: the Job status patched Complete the way the Job controller writes it
   (as the smoke test does; no kubelet), to the resource's MODIFIED event with phase Succeeded; one at a
   time for the sequential set, all at once for the burst set.
3. API requests per reconcile: the emulator's request log during 1-2 (requests from this script are
   excluded by their User-Agent), by verb, divided by the operator's `adacot_reconcile_total`; and per
   resource (a skipped reconcile lowers the second, not the first).
   Long-running watches are logged when they close, so `watch` counts the re-opened ones only.
4. Operator RSS (psutil): idle after start, with `--resources` GradingRuns reconciled (each has its
   Job), and peak (the kernel's VmHWM).

Reference in the same run: the emulator's own create + get round trip (a ConfigMap, from this script),
so the latencies can be read as multiples of what the API server itself costs on this machine.
Prints a markdown table and writes benchmarks/results/operator.json and .md (not with --quick).
Timings are wall-clock on a shared 2-CPU machine; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "operator")]

from adacot_operator.names import child_name  # noqa: E402
from bench_support import free_port, machine  # noqa: E402
from k8s_objects import sample  # noqa: E402
from kube.fixtures import TOKEN, make_kubectl, start_emulator, stop  # noqa: E402
from sft import _version  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "operator.json"
AGENT = "adacot-bench"
NAMESPACE = "default"
RUNS = f"/apis/adacot.dev/v1alpha1/namespaces/{NAMESPACE}/gradingruns"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
DEADLINE_S = 180.0


def log(message: str) -> None:
    print(f"[operator bench] {message}", file=sys.stderr, flush=True)


class Watch:
    """First time each object name was seen by a watch satisfying `match`, re-opened when it closes."""

    def __init__(
        self,
        client: httpx.Client,
        path: str,
        match: Callable[[dict[str, Any]], bool],
        alive: Callable[[], bool],
    ) -> None:
        self.client, self.path, self.match, self.alive = client, path, match, alive
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                with self.client.stream("GET", self.path, params={"watch": "true"}, timeout=None) as r:
                    for line in r.iter_lines():
                        self._event(json.loads(line)) if line else None
            except (httpx.HTTPError, json.JSONDecodeError):
                return  # the emulator stopped

    def _event(self, event: dict[str, Any]) -> None:
        now = time.perf_counter()
        body = event.get("object", {})
        name = body.get("metadata", {}).get("name")
        if name and name not in self.seen and event.get("type") != "DELETED" and self.match(body):
            with self.changed:
                self.seen[name] = now
                self.changed.notify_all()

    def wait(self, names: list[str]) -> None:
        """Block until every name was seen (event-driven; woken every 5 s to notice a dead operator)."""
        deadline = time.monotonic() + DEADLINE_S
        with self.changed:
            while not self.changed.wait_for(lambda: all(n in self.seen for n in names), 5):
                if not self.alive() or time.monotonic() > deadline:
                    missing = [n for n in names if n not in self.seen]
                    state = "timed out" if self.alive() else "the operator exited"
                    raise SystemExit(f"{state} on {self.path}: {len(missing)} not seen, e.g. {missing[:3]}")


class Operator:
    """`kopf run -m adacot_operator.handlers` in its own process group, its log in a file."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.metrics = free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "ADACOT_METRICS_PORT": str(self.metrics)}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")])
        kopf = str(Path(sys.executable).parent / "kopf")
        command = [kopf, "run", "-m", "adacot_operator.handlers", "--standalone", "--all-namespaces",
                   f"--liveness=http://127.0.0.1:{free_port()}/healthz"]  # fmt: skip
        self.log_path = log_path
        with log_path.open("ab") as sink:
            self.process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.ps = psutil.Process(self.process.pid)

    def rss_mib(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    def peak_mib(self) -> float:
        """VmHWM: the kernel's high-water mark of resident memory, so no sampling is missed."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def reconciles(self) -> float:
        """Sum of adacot_reconcile_total; retried, as a busy machine can reset a scrape."""
        url = f"http://127.0.0.1:{self.metrics}/metrics"
        for attempt in range(5):
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    text = response.read().decode()
                break
            except OSError:
                if attempt == 4 or self.process.poll() is not None:
                    raise
                time.sleep(0.5)
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("adacot_reconcile_total{"))  # fmt: skip

    def wait_ready(self) -> None:
        """Until /metrics answers (the operator's startup handler has run)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"operator exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                self.reconciles()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"operator never served /metrics:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# ---------------------------------------------------------------- measurements


def body(name: str) -> dict[str, Any]:
    run: dict[str, Any] = sample("GradingRun", "qwen7b-pool")
    run["metadata"] = {"name": name, "namespace": NAMESPACE}
    return run


def create(client: httpx.Client, name: str) -> float:
    client.post(RUNS, json=body(name)).raise_for_status()
    return time.perf_counter()


def complete(client: httpx.Client, name: str) -> float:
    done = {"status": {"startTime": "2026-01-01T10:00:00Z", "completionTime": "2026-01-01T10:05:00Z",
                       "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}  # fmt: skip
    headers = {"Content-Type": "application/merge-patch+json"}
    url = f"{JOBS}/{child_name('GradingRun', name)}/status"
    client.patch(url, content=json.dumps(done), headers=headers).raise_for_status()
    return time.perf_counter()


def job_of(name: str) -> str:
    return str(child_name("GradingRun", name))


def latencies(start: dict[str, float], seen: dict[str, float], jobs: bool = False) -> list[float]:
    """Seconds from each start to when its name (or its Job's name) was seen."""
    return [seen[job_of(name) if jobs else name] - t for name, t in start.items()]


def api_round_trip(client: httpx.Client, count: int) -> list[float]:
    """The emulator's own cost: create + get of a ConfigMap from this script."""
    times = []
    for i in range(count):
        t = time.perf_counter()
        configmap = {"metadata": {"name": f"ref-{i}"}, "data": {"k": "v"}}
        client.post(f"/api/v1/namespaces/{NAMESPACE}/configmaps", json=configmap).raise_for_status()
        client.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/ref-{i}").raise_for_status()
        times.append(time.perf_counter() - t)
    return times


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"n": len(ordered), "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * p95, "max_ms": 1000 * ordered[-1]}  # fmt: skip


def requests_by_verb(entries: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.get("user_agent") != AGENT:
            verb = f"{entry['verb']} {entry['resource']}" + (
                f"/{entry['subresource']}" if entry.get("subresource") else ""
            )
            counts[verb] = counts.get(verb, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def bench(api: Any, operator: Operator, client: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    alive = lambda: operator.process.poll() is None  # noqa: E731
    jobs = Watch(client, "/apis/batch/v1/jobs", lambda b: True, alive)
    done = Watch(client, "/apis/adacot.dev/v1alpha1/gradingruns",
                 lambda b: (b.get("status") or {}).get("phase") == "Succeeded", alive)  # fmt: skip
    out: dict[str, Any] = {"reference_round_trip": stats(api_round_trip(client, args.sequential))}
    out["idle_rss_mib"] = operator.rss_mib()
    log_start, reconciles_start = len(api.requests()), operator.reconciles()

    log(f"{args.sequential} GradingRuns one at a time")
    seq: dict[str, float] = {}
    for i in range(args.sequential):
        name = f"seq-{i}"
        seq[name] = create(client, name)
        jobs.wait([job_of(name)])
    log(f"{args.burst} GradingRuns at once")
    burst = {f"burst-{i}": create(client, f"burst-{i}") for i in range(args.burst)}
    jobs.wait([job_of(n) for n in burst])
    out["create_to_job"] = {
        "sequential": stats(latencies(seq, jobs.seen, jobs=True)),
        "burst": stats(latencies(burst, jobs.seen, jobs=True)),
    }
    log("Jobs done, one at a time, then the burst set at once")
    seq_done: dict[str, float] = {}
    for name in seq:
        seq_done[name] = complete(client, name)
        done.wait([name])
    burst_done = {name: complete(client, name) for name in burst}
    done.wait(list(burst_done))
    out["job_done_to_succeeded"] = {
        "sequential": stats(latencies(seq_done, done.seen)),
        "burst": stats(latencies(burst_done, done.seen)),
    }
    reconciles = operator.reconciles() - reconciles_start
    verbs = requests_by_verb(api.requests()[log_start:])
    out["requests"] = {"reconciles": reconciles, "resources": len(seq) + len(burst), "by_verb": verbs,
                       "per_reconcile": sum(verbs.values()) / max(reconciles, 1),
                       "per_resource": sum(verbs.values()) / (len(seq) + len(burst))}  # fmt: skip

    more = max(0, args.resources - len(seq) - len(burst))
    log(f"{more} more GradingRuns, {args.resources} in all, for memory")
    t0 = time.perf_counter()
    extra = [f"mem-{i}" for i in range(more)]
    for name in extra:
        create(client, name)
    jobs.wait([job_of(n) for n in extra])
    out["memory"] = {"resources": len(seq) + len(burst) + more, "idle_rss_mib": out["idle_rss_mib"],
                     "loaded_rss_mib": operator.rss_mib(), "peak_rss_mib": operator.peak_mib(),
                     "fill_s": time.perf_counter() - t0}  # fmt: skip
    return out


# ---------------------------------------------------------------- report


def table(r: dict[str, Any]) -> str:
    ref = r["reference_round_trip"]["p50_ms"]
    rows = [("reference: emulator create + get round trip (this script)", r["reference_round_trip"])]
    for title, key in (("create -> Job created", "create_to_job"),
                       ("Job done -> phase Succeeded", "job_done_to_succeeded")):  # fmt: skip
        rows += [(f"{title}, {mode}", r[key][mode]) for mode in ("sequential", "burst")]
    lines = [
        "| latency | n | p50 ms | p95 ms | max ms | p50 / reference |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {t} | {s['n']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['max_ms']:.1f} | "
              f"{s['p50_ms'] / ref:.1f}x |" for t, s in rows]  # fmt: skip
    q, m = r["requests"], r["memory"]
    verbs = ", ".join(f"{k} {v}" for k, v in q["by_verb"].items())
    lines += ["", f"API requests per reconcile: **{q['per_reconcile']:.2f}** ({sum(q['by_verb'].values())} "
              f"requests, {q['reconciles']:.0f} reconciles, {q['resources']} resources created and "
              f"completed: **{q['per_resource']:.1f}** a resource); by verb: {verbs}",
              "", f"operator RSS: idle **{m['idle_rss_mib']:.0f} MiB**, with {m['resources']} GradingRuns "
              f"**{m['loaded_rss_mib']:.0f} MiB**, peak **{m['peak_rss_mib']:.0f} MiB** (last "
              f"{m['resources'] - q['resources']} created in {m['fill_s']:.1f} s)"]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=20, help="Resources created one at a time.")
    parser.add_argument("--burst", type=int, default=50, help="Resources created back to back.")
    parser.add_argument("--resources", type=int, default=500, help="Resources held for the memory figure.")
    parser.add_argument("--quick", action="store_true", help="5 + 10, 20 in all; no files written.")
    args = parser.parse_args()
    if args.quick:
        args.sequential, args.burst, args.resources = 5, 10, 20
    info = machine()
    info["versions"] |= {
        p: psutil.__version__ if p == "psutil" else _version(p) for p in ("kopf", "kmock", "psutil")
    }
    with tempfile.TemporaryDirectory(prefix="adacot-bench-operator-") as tmp:
        process, api = start_emulator(Path(tmp) / "kube")
        operator = None
        try:
            make_kubectl(api)("apply", "-f", str(ROOT / "crds"))
            operator = Operator(api.kubeconfig, Path(tmp) / "operator.log")
            operator.wait_ready()
            headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": AGENT}
            with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
                results = bench(api, operator, client, args)
        finally:
            if operator is not None:
                operator.stop()
            stop(process)
    report(info, results, args)


def report(info: dict[str, Any], results: dict[str, Any], args: argparse.Namespace) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    header = (f"machine: {info['cpu']}, {info['cpus']} CPUs shared with other engineers' work, Python "
              f"{info['python']}, load average {info['load_before']:.2f} at start\n\nversions: {versions}\n\n"
              "API server: the emulator (tests/kube), one process; operator: "
              "`kopf run -m adacot_operator.handlers --standalone --all-namespaces`; "
              "resource: the sample GradingRun")  # fmt: skip
    text = table(results)
    print(header + "\n\n" + text)
    if not args.quick:
        settings = {k: getattr(args, k) for k in ("sequential", "burst", "resources")}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": info, "settings": settings, **results}, indent=2) + "\n")
        RESULTS.with_suffix(".md").write_text(header + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
