"""The artifact directory contract (adacot.artifacts.store, .manifest): shards, MANIFEST.json, _SUCCESS,
refusal of incomplete or modified artifacts, quarantine counts. Logs, merge and kills: test_shards.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import manifest, question, questions

from adacot.artifacts import store as store_module
from adacot.artifacts.jsonio import ArtifactError, iter_records, sha256_file
from adacot.artifacts.manifest import Manifest, read_manifest
from adacot.artifacts.rows import QuarantinedRow, Question
from adacot.artifacts.store import ArtifactDir, artifact_files, is_complete, read_records, verify_artifact

REPO = Path(__file__).resolve().parents[2]


def test_write_finalize_read(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 10), Question)
    artifact.write_shard("part-00001.parquet", questions(10, 25), Question)
    assert not is_complete(artifact.root)
    result = artifact.finalize(manifest())
    assert is_complete(artifact.root)
    assert list(result.files) == ["data/part-00000.jsonl", "data/part-00001.parquet"]
    assert [e.records for e in result.files.values()] == [10, 15]
    assert result.total_records == 25
    assert result.record_type == "Question"
    for relative, entry in result.files.items():
        assert entry.sha256 == sha256_file(artifact.root / relative)
    assert result.versions["python"] and result.versions["pydantic"] and result.versions["adacot"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.created)
    assert (result.seed, result.spec, result.metrics) == (7, {"k": 1}, {"accuracy": 0.5})
    assert read_manifest(artifact.root) == result
    assert [q.id for q in read_records(artifact.root, Question, verify=True)] == [
        f"q{i:04d}" for i in range(25)
    ]
    assert not artifact.work_dir.exists()


def test_success_is_written_only_after_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 3), Question)
    renamed: list[str] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)

    def broken(directory: Path, _manifest: Manifest) -> Path:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "write_manifest", broken)
        with pytest.raises(OSError, match="disk full"):
            artifact.finalize(manifest())
    assert not (artifact.root / "_SUCCESS").exists()
    assert not is_complete(artifact.root)
    artifact.finalize(manifest())
    assert renamed[-2:] == ["MANIFEST.json", "_SUCCESS"]


def test_incomplete_artifact_is_refused_unless_asked(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 4), Question)
    with pytest.raises(ArtifactError, match=r"out is incomplete \(no _SUCCESS\).*allow_incomplete=True"):
        list(read_records(artifact.root, Question))
    assert len(list(read_records(artifact.root, Question, allow_incomplete=True))) == 4
    with pytest.raises(ArtifactError, match="does not exist"):
        artifact_files(tmp_path / "nothing")


def test_complete_artifact_is_not_written_into(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.finalize(manifest())
    with pytest.raises(ArtifactError, match="already a complete artifact"):
        artifact.write_shard("part-00000.jsonl", questions(0, 1), Question)


def test_rerun_skips_finished_shards_and_discards_a_leftover_temp(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 5), Question)
    # A writer killed inside shard 1 leaves its temp file behind.
    leftover = artifact.data_dir / ".tmp-99999-part-00001.jsonl"
    leftover.write_text(question(5).model_dump_json() + "\n" + '{"id": "q00')
    consumed: list[str] = []

    def tracked(name: str, start: int, stop: int) -> Iterator[Question]:
        consumed.append(name)
        yield from questions(start, stop)

    artifact.write_shard("part-00000.jsonl", tracked("part-00000", 0, 5), Question)
    artifact.write_shard("part-00001.jsonl", tracked("part-00001", 5, 9), Question)
    assert consumed == ["part-00001"]
    assert not leftover.exists()
    result = artifact.finalize(manifest())
    assert result.total_records == 9
    ids = [q.id for q in read_records(artifact.root, Question)]
    assert ids == [f"q{i:04d}" for i in range(9)]


def test_shard_without_completion_record_or_modified_is_rewritten(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("a.jsonl", questions(0, 3), Question)
    (artifact.state_dir / "a.jsonl.json").unlink()
    assert not artifact.shard_done("a.jsonl")
    artifact.write_shard("a.jsonl", questions(0, 3), Question)
    assert artifact.shard_done("a.jsonl")
    path = artifact.data_dir / "a.jsonl"
    path.write_bytes(path.read_bytes().replace(b"What is 1", b"What is 7"))  # same size, other content
    assert artifact.shard_done("a.jsonl", verify_hash=False)
    assert not artifact.shard_done("a.jsonl")


def test_finalize_refuses_files_that_are_not_finished_shards(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 2), Question)
    (artifact.data_dir / "stray.jsonl").write_text("{}\n")
    with pytest.raises(ArtifactError, match=r"not finished shards: stray\.jsonl"):
        artifact.finalize(manifest())
    assert not is_complete(artifact.root)


def test_sha256_verification_catches_a_modified_file(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    artifact.write_shard("part-00000.jsonl", questions(0, 5), Question)
    artifact.finalize(manifest())
    verify_artifact(artifact.root)
    path = artifact.data_dir / "part-00000.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"answer":"4"', b'"answer":"5"'))
    with pytest.raises(ArtifactError, match=r"data/part-00000\.jsonl: sha256 differs"):
        verify_artifact(artifact.root)
    with pytest.raises(ArtifactError, match="sha256 differs"):
        next(read_records(artifact.root, Question, verify=True))
    assert len(list(read_records(artifact.root, Question))) == 5  # without verify the reader trusts the file
    (artifact.data_dir / "extra.jsonl").write_text("")
    path.write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"0 bytes, manifest says \d+; data/extra\.jsonl: not listed"):
        verify_artifact(artifact.root)


def test_quarantine_is_counted_in_the_manifest(tmp_path: Path) -> None:
    artifact = ArtifactDir(tmp_path / "out")
    rows = [QuarantinedRow(file="q.jsonl", line=n, reason="not valid JSON", raw="{") for n in (3, 9)]
    assert artifact.write_quarantine(rows) == 2
    result = artifact.finalize(manifest())
    assert (result.quarantined, result.quarantine_file) == (2, "quarantine.jsonl")
    assert list(iter_records(artifact.root / "quarantine.jsonl", QuarantinedRow)) == rows


# -- append logs ------------------------------------------------------------------------------------


def test_counters_as_dict_keeps_counts_and_sorts_reasons() -> None:
    from collections import Counter
    from dataclasses import dataclass, field

    from adacot.artifacts.manifest import Counters

    @dataclass
    class Seen(Counters):
        questions: int = 0
        reasons: Counter[str] = field(default_factory=Counter)

    seen = Seen(questions=3, reasons=Counter(["wrong", "kept", "wrong"]))
    assert seen.as_dict() == {"questions": 3, "reasons": {"kept": 1, "wrong": 2}}
    assert list(seen.as_dict()["reasons"]) == ["kept", "wrong"]
