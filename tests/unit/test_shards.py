"""Per-record resume and the merge (adacot.artifacts.shards): append logs, shard specs, deterministic
merges, and SIGKILLed shard writers.

The kill tests SIGKILL a real writer subprocess mid-stream and check that a rerun loses and duplicates
nothing. They synchronise on the child's stdout (one line per record written), never on time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import manifest, question

from adacot.api.common import TaskType
from adacot.artifacts.jsonio import ArtifactError, iter_records
from adacot.artifacts.rows import Attempt, Question
from adacot.artifacts.shards import AppendLog, ShardSpec, merge_logs, shard_of
from adacot.artifacts.store import ArtifactDir, read_records

REPO = Path(__file__).resolve().parents[2]


def test_append_log_skips_known_keys_and_survives_reopen(tmp_path: Path) -> None:
    shard = ShardSpec(0, 1)
    with AppendLog(tmp_path, shard, Question) as log:
        assert log.append(question(1)) and log.append(question(2))
        assert not log.append(question(1))
    with AppendLog(tmp_path, shard, Question) as log:
        assert log.done_keys == {"q0001", "q0002"} and "q0001" in log and len(log) == 2
        assert not log.append(question(2))
        assert log.append(question(3))
        assert [q.id for q in log.records()] == ["q0001", "q0002", "q0003"]
        assert log.torn_bytes == 0


def test_append_log_drops_a_torn_last_line(tmp_path: Path) -> None:
    shard = ShardSpec(2, 4)
    with AppendLog(tmp_path, shard, Question) as log:
        log.append(question(1))
    torn = question(2).model_dump_json()[:25].encode()
    with log.path.open("ab") as handle:
        handle.write(torn)
    with AppendLog(tmp_path, shard, Question) as log:
        assert log.torn_bytes == len(torn)
        assert log.done_keys == {"q0001"}
        assert log.append(question(2))
    assert [q.id for q in iter_records(log.path, Question)] == ["q0001", "q0002"]


def test_append_log_refuses_corruption_and_appends_after_done(tmp_path: Path) -> None:
    shard = ShardSpec(0, 1)
    with AppendLog(tmp_path, shard, Question) as log:
        log.append(question(1))
        log.mark_done()
        with pytest.raises(ArtifactError, match="marked done"):
            log.append(question(2))
    with log.path.open("ab") as handle:
        handle.write(b'{"not": "a question"}\n')
    with pytest.raises(ArtifactError, match=r"log-00000-of-00001\.jsonl:2: not a valid Question"):
        AppendLog(tmp_path, shard, Question)


def test_shard_spec() -> None:
    assert ShardSpec.parse(" 3/8 ") == ShardSpec(3, 8)
    assert ShardSpec.from_env(4, {"JOB_COMPLETION_INDEX": "2"}) == ShardSpec(2, 4)
    assert ShardSpec.from_env(4, {}) == ShardSpec(0, 4)
    for bad in ("3", "8/8", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            ShardSpec.parse(bad)
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        ShardSpec.from_env(4, {"JOB_COMPLETION_INDEX": "x"})
    keys = [f"q{i}" for i in range(500)]
    owners = [[s for s in range(5) if ShardSpec(s, 5).owns(k)] for k in keys]
    assert all(len(o) == 1 for o in owners)  # every key has exactly one owner
    counts = [sum(1 for o in owners if o == [s]) for s in range(5)]
    assert min(counts) > 50  # and the split is not degenerate
    assert shard_of("q1", 5) == shard_of("q1", 5)


# -- merge ----------------------------------------------------------------------------------------


def write_logs(work_dir: Path, count: int, ids: list[int]) -> None:
    for index in range(count):
        with AppendLog(work_dir, ShardSpec(index, count), Question) as log:
            for i in ids:
                if ShardSpec(index, count).owns(question(i).id):
                    log.append(question(i))
            log.mark_done()


def test_merge_is_deterministic_sorted_and_resumable(tmp_path: Path) -> None:
    ids = list(range(40))
    first, second = ArtifactDir(tmp_path / "a"), ArtifactDir(tmp_path / "b")
    write_logs(first.work_dir, 3, ids)
    write_logs(second.work_dir, 3, ids[::-1])  # other finishing order
    results = [merge_logs(a, Question, 3, records_per_file=16) for a in (first, second)]
    assert results[0].files == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert results[0].records == 40 and results[0].duplicates_dropped == 0
    for name in results[0].files:
        assert (first.data_dir / name).read_bytes() == (second.data_dir / name).read_bytes()
    # A second merge (e.g. after a kill during finalize) rewrites nothing.
    before = {p.name: p.stat().st_mtime_ns for p in first.data_dir.iterdir()}
    merge_logs(first, Question, 3, records_per_file=16)
    assert {p.name: p.stat().st_mtime_ns for p in first.data_dir.iterdir()} == before
    # Another chunking drops the old parts instead of mixing them.
    merge_logs(first, Question, 3, records_per_file=25)
    assert sorted(p.name for p in first.data_dir.iterdir()) == ["part-00000.jsonl", "part-00001.jsonl"]
    result = first.finalize(manifest())
    merged = [q.id for q in read_records(first.root, Question)]
    assert merged == sorted(question(i).id for i in ids) and result.total_records == 40


def test_merge_to_parquet(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    write_logs(artifact.work_dir, 2, list(range(10)))
    assert merge_logs(artifact, Question, 2, fmt="parquet").files == ["part-00000.parquet"]
    artifact.finalize(manifest())
    assert [q.id for q in read_records(artifact.root, Question)] == [question(i).id for i in range(10)]


def test_merge_drops_identical_duplicates_and_refuses_conflicts(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    for index in range(2):
        with AppendLog(artifact.work_dir, ShardSpec(index, 2), Question) as log:
            log.append(question(1))
            log.append(question(10 + index))
            log.mark_done()
    result = merge_logs(artifact, Question, 2)
    assert (result.records, result.duplicates_dropped) == (3, 1)
    other = ArtifactDir(tmp_path / "other")
    for index in range(2):
        with AppendLog(other.work_dir, ShardSpec(index, 2), Question) as log:
            log.append(question(1).model_copy(update={"answer": str(index)}))
            log.mark_done()
    with pytest.raises(ArtifactError, match="'q0001' logged with different content"):
        merge_logs(other, Question, 2)


def test_merge_refuses_unfinished_or_mixed_shards(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    write_logs(artifact.work_dir, 3, list(range(12)))
    (artifact.work_dir / "log-00001-of-00003.done").unlink()
    with pytest.raises(ArtifactError, match="shard 1 is not marked done"):
        merge_logs(artifact, Question, 3)
    assert merge_logs(artifact, Question, 3, require_all=False).records == 12
    with AppendLog(artifact.work_dir, ShardSpec(0, 2), Question) as log:
        log.append(question(99))
    with pytest.raises(ArtifactError, match=r"shard counts \[2, 3\]; this merge expects 3"):
        merge_logs(artifact, Question, 3)
    missing = ArtifactDir(tmp_path / "missing")
    for index in range(3):
        with AppendLog(missing.work_dir, ShardSpec(index, 4), Question) as log:
            log.mark_done()
    with pytest.raises(ArtifactError, match="cannot merge: shard 3 has no log"):
        merge_logs(missing, Question, 4)


# -- a real kill ------------------------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from adacot.api.common import TaskType
from adacot.artifacts.rows import Attempt
from adacot.artifacts.shards import AppendLog, ShardSpec

work, index, count, total = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
shard = ShardSpec(index, count)
with AppendLog(work, shard, Attempt) as log:
    for i in range(total):
        text = "x" * (i % 997) + str(i)
        record = Attempt(question_id=f"q{i:05d}", sample=0, text=text, completion_tokens=i)
        if shard.owns(record.question_id) and log.append(record):
            print(record.question_id, flush=True)
    log.mark_done()
print("DONE", flush=True)
"""


def run_writer(script: Path, work: Path, index: int, count: int, total: int, kill_after: int | None) -> int:
    """Run one shard writer; SIGKILL it after it reports `kill_after` records. Returns records it reported."""
    child = subprocess.Popen(
        [sys.executable, str(script), str(work), str(index), str(count), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert child.stdout is not None
    reported = 0
    for line in child.stdout:
        if line.strip() == "DONE":
            break
        reported += 1
        if reported == kill_after:
            child.send_signal(signal.SIGKILL)
            break
    child.stdout.close()
    child.wait()
    if kill_after is not None and reported == kill_after:
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.returncode == 0
    return reported


def test_sigkilled_shard_writers_resume_without_loss_or_duplicates(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    artifact = ArtifactDir(tmp_path / "out")
    total, count = 3000, 2
    for index in range(count):
        assert run_writer(script, artifact.work_dir, index, count, total, kill_after=300) == 300
    with pytest.raises(ArtifactError, match="not marked done"):
        merge_logs(artifact, Attempt, count)
    resumed = [run_writer(script, artifact.work_dir, i, count, total, kill_after=None) for i in range(count)]
    owned = [sum(1 for i in range(total) if ShardSpec(s, count).owns(f"q{i:05d}")) for s in range(count)]
    assert all(done < own for done, own in zip(resumed, owned, strict=True))  # the rerun did only the rest
    merge_logs(artifact, Attempt, count, records_per_file=1000)
    result = artifact.finalize(manifest())
    ids = [a.question_id for a in read_records(artifact.root, Attempt, verify=True)]
    assert ids == [f"q{i:05d}" for i in range(total)]  # every record exactly once, in key order
    assert result.total_records == total
    for attempt in read_records(artifact.root, Attempt):
        assert attempt.completion_tokens == int(attempt.question_id[1:])  # no record mangled


SHARD_WRITER = """
import sys
from pathlib import Path
from adacot.api.common import TaskType
from adacot.api.common import TaskType
from adacot.artifacts.rows import Question
from adacot.artifacts.store import ArtifactDir

artifact = ArtifactDir(Path(sys.argv[1]))
for part in range(8):
    rows = (Question(id=f"p{part}-{i}", task=TaskType.math, problem="y" * 300, answer="1", source="s")
            for i in range(4000))
    artifact.write_shard(f"part-{part:05d}.jsonl", rows, Question)
    print(part, flush=True)
"""


def test_sigkilled_shard_writer_resumes_from_finished_shards(tmp_path: Path) -> None:
    script = tmp_path / "shards.py"
    script.write_text(SHARD_WRITER)
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert child.stdout is not None
    assert [child.stdout.readline().strip() for _ in range(3)] == ["0", "1", "2"]
    child.kill()
    child.wait()
    artifact = ArtifactDir(out)
    finished = artifact.finished_shards()
    assert finished[:3] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    regenerated = []
    for part in range(8):

        def rows(part: int = part) -> Iterator[Question]:
            regenerated.append(part)
            for i in range(4000):
                yield Question(
                    id=f"p{part}-{i}", task=TaskType.math, problem="y" * 300, answer="1", source="s"
                )

        artifact.write_shard(f"part-{part:05d}.jsonl", rows(), Question)
    assert regenerated == list(range(len(finished), 8))
    assert not list(artifact.data_dir.glob(".tmp-*"))
    result = artifact.finalize(manifest())
    assert result.total_records == 8 * 4000
    ids = [q.id for q in read_records(out, Question, verify=True)]
    assert len(ids) == len(set(ids)) == 32000
    assert json.loads((out / "MANIFEST.json").read_text())["total_records"] == 32000
