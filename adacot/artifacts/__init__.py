"""Records and artifacts: the row types every stage exchanges, their files, and the output-directory contract.

`rows` defines the records, `jsonio` reads and writes them (JSONL, Parquet), `datasets` loads input
questions, `store` writes stage outputs atomically (shards, MANIFEST.json, _SUCCESS) and reads them
back, `shards` gives long stages per-record resume and the merge of sharded work.
"""

from adacot.artifacts.datasets import DatasetError, QuestionSet, iter_questions, load_questions
from adacot.artifacts.jsonio import ArtifactError, FileStats, iter_records, write_records
from adacot.artifacts.manifest import FileEntry, Manifest, package_versions, read_manifest, write_manifest
from adacot.artifacts.rows import (
    Attempt,
    BankEntry,
    CotTrace,
    GradedQuestion,
    Message,
    QuarantinedRow,
    Question,
    Record,
    SftExample,
    question_id,
)
from adacot.artifacts.shards import AppendLog, MergeResult, ShardSpec, merge_logs, shard_of
from adacot.artifacts.store import ArtifactDir, artifact_files, is_complete, read_records, verify_artifact

__all__ = [
    "AppendLog",
    "ArtifactDir",
    "ArtifactError",
    "Attempt",
    "BankEntry",
    "CotTrace",
    "DatasetError",
    "FileEntry",
    "FileStats",
    "GradedQuestion",
    "Manifest",
    "MergeResult",
    "Message",
    "QuarantinedRow",
    "Question",
    "QuestionSet",
    "Record",
    "SftExample",
    "ShardSpec",
    "artifact_files",
    "is_complete",
    "iter_questions",
    "iter_records",
    "load_questions",
    "merge_logs",
    "package_versions",
    "question_id",
    "read_manifest",
    "read_records",
    "shard_of",
    "verify_artifact",
    "write_manifest",
    "write_records",
]
