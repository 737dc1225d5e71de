"""The sharded-stage skeleton (adacot.pipelines.sharded) with a toy kind: items are numbers, a record is
the number squared. Shards, resume after a failed chunk, counters summed over runs, the waiting summary,
one merge under the lock, a complete artifact's summary, and the lock's re-check."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from adacot.artifacts.jsonio import ArtifactError
from adacot.artifacts.manifest import Manifest, read_manifest
from adacot.artifacts.shards import ShardSpec, merge_logs
from adacot.artifacts.store import ArtifactDir, read_records
from adacot.artifacts.summary import write_summary
from adacot.pipelines import sharded
from adacot.pipelines.sharded import ChunkWorker, ShardedStage, ShardInputs, add_counters

ITEMS = list(range(20))


class Square(BaseModel):
    number: int
    square: int

    @property
    def key(self) -> str:
        return f"{self.number:03d}"


def stage(root: Path) -> ShardedStage[int, Square]:
    return ShardedStage(
        root=root,
        log_dir=root / "_work",
        record_type=Square,
        key=lambda n: f"{n:03d}",
        chunk_size=3,
        short_keys=("kind", "parts"),
    )


class Engines:
    """Counts what it processed; raises on chunk number `fail_on` (1-based) of one run."""

    def __init__(self, fail_on: int = 0) -> None:
        self.fail_on, self.started = fail_on, 0
        self.processed: list[int] = []

    @contextmanager
    def __call__(self) -> Iterator[ChunkWorker[int, Square]]:
        self.started += 1
        chunks = 0

        def process(chunk: list[int]) -> list[Square]:
            nonlocal chunks
            chunks += 1
            if chunks == self.fail_on:
                raise RuntimeError("engine died")
            self.processed += chunk
            return [Square(number=n, square=n * n) for n in chunk]

        yield ChunkWorker(process, lambda: {"toy": {"chunks": chunks}, "items": 3 * chunks})


def load(engines: Engines, artifact: ArtifactDir) -> ShardInputs[int, Square]:
    return ShardInputs(ITEMS, engines)


def content(count: int, artifact: ArtifactDir, counters: dict[str, Any]) -> tuple[dict[str, Any], Manifest]:
    merge_logs(artifact, Square, count)
    parts = sum(1 for _ in artifact.data_dir.glob("part-*"))
    manifest = Manifest(kind="Toy", name="t", metrics=counters)
    return {"kind": "Toy", "parts": parts, "counters": counters}, manifest


def run(root: Path, shard: ShardSpec, engines: Engines) -> dict[str, Any]:
    return sharded.run_shard(stage(root), shard, partial(load, engines), partial(content, shard.count))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({}, {}, {}),
        ({"x": 1}, {"x": 2, "y": 0.5}, {"x": 3, "y": 0.5}),
        ({"u": {"n": 1}}, {"u": {"n": 2, "m": 1}}, {"u": {"n": 3, "m": 1}}),
        ({"x": 1}, {"s": "text", "l": [1]}, {"x": 1}),
        ({}, {"u": {}}, {"u": {}}),
    ],
)
def test_add_counters(a: dict[str, Any], b: dict[str, Any], expected: dict[str, Any]) -> None:
    assert add_counters(a, b) == expected


def test_shards_wait_then_the_last_one_merges_and_a_rerun_returns_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination = tmp_path / "termination-log"
    monkeypatch.setenv("ADACOT_TERMINATION_LOG", str(termination))
    out = tmp_path / "out"
    first = run(out, ShardSpec(1, 2), Engines())
    assert first["complete"] is False and first["waiting_for"] == ["00000-of-00002"]
    assert first["questions"] == sum(ShardSpec(1, 2).owns(f"{n:03d}") for n in ITEMS)
    with pytest.raises(ArtifactError, match="shards not done: 00000-of-00002"):
        sharded.merge(stage(out), 2, partial(content, 2))

    summary = run(out, ShardSpec(0, 2), Engines())
    assert summary["kind"] == "Toy" and summary["parts"] == 1
    assert [r.number for r in read_records(out, Square)] == ITEMS
    manifest_hash = hashlib.sha256((out / "MANIFEST.json").read_bytes()).hexdigest()
    assert json.loads(termination.read_text()) == {"sha256": manifest_hash, "kind": "Toy", "parts": 1}
    assert read_manifest(out).metrics == summary["counters"]
    assert not (out / "_work").exists()  # the logs, counters and lock go with _work/

    again = Engines()
    assert run(out, ShardSpec(0, 2), again) == summary and again.started == 0


def test_a_failed_chunk_is_redone_and_counters_add_up_over_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    failing = Engines(fail_on=3)
    with pytest.raises(RuntimeError, match="engine died"):
        run(out, ShardSpec(0, 1), failing)
    assert failing.processed == ITEMS[:6]  # two chunks logged; the third was in flight
    assert json.loads((out / "_work" / "stats-00000-of-00001.json").read_text()) == {
        "toy": {"chunks": 2},
        "items": 6,
    }
    resumed = Engines()
    summary = run(out, ShardSpec(0, 1), resumed)
    assert resumed.processed == ITEMS[6:]  # nothing logged is asked again
    assert [r.number for r in read_records(out, Square)] == ITEMS  # none lost, none twice
    # counters of the failed run's third chunk were never saved: 2 chunks + 5 chunks
    assert summary["counters"] == {"toy": {"chunks": 7}, "items": 21}


def test_a_done_shard_does_not_start_its_engines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out, ShardSpec(0, 2), Engines())
    rerun = Engines()
    assert run(out, ShardSpec(0, 2), rerun)["complete"] is False and rerun.started == 0


def test_merge_rechecks_completeness_after_waiting_for_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    artifact = ArtifactDir(out).prepare()
    results: list[dict[str, Any]] = []

    def never(artifact: ArtifactDir, counters: dict[str, Any]) -> tuple[dict[str, Any], Manifest]:
        raise AssertionError("merged twice")

    waiter = threading.Thread(target=lambda: results.append(sharded.merge(stage(out), 1, never)))
    with sharded.merge_lock(artifact):
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive()  # blocked on the lock
        write_summary(out, {"kind": "Toy", "merged": "elsewhere"})
        artifact.finalize(Manifest(kind="Toy", name="t"))
    waiter.join(timeout=10)
    assert results == [{"kind": "Toy", "merged": "elsewhere"}]
