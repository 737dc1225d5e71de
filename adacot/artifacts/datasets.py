"""Load question datasets into `Question` records, with file:line errors or a quarantine for bad rows.

Callers: the grading stage (its question pool and evaluation sets), the bank stage (decontamination
benchmarks), `adacot grade`. Input forms (`DatasetSpec.format`, `auto` picks by name):

- a JSONL file (`.jsonl`, `.json` holding JSON lines, `.jsonl.gz`), read line by line;
- a Parquet file, read in record batches;
- a directory of shards (`*.jsonl`, `*.jsonl.gz`, `*.parquet`), read in sorted file-name order;
- a `datasets.save_to_disk` directory (a Dataset, or a DatasetDict with `split`), via `load_from_disk`.

Rows are mapped with `FieldMapping`: the problem text is required; task math requires a reference answer
(a string, or a number which is kept as its string form); task code requires tests, a JSON object or a
string holding one (only that it is an object is checked here; the code verifier reads its content).
Without an id field the id is `question_id(problem, source)`. Unmapped fields are kept in `meta`.

Errors name the place: `path:LINE` (1-based) for JSONL, `path:row N` (0-based, as `dataset[N]`) for
Parquet and Arrow. With `onBadRow: quarantine` a bad row becomes a `QuarantinedRow` instead, and the
stage writes them with `ArtifactDir.write_quarantine`, which `finalize` counts into the manifest.

Limits: `limit` counts rows read (bad rows included), in file order; duplicate detection keeps every id
seen in memory (a few dozen bytes per question).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow.parquet as pq
from pydantic import ValidationError

from adacot.api.common import BadRowPolicy, DatasetSpec, TaskType
from adacot.artifacts.jsonio import validation_summary
from adacot.artifacts.rows import QuarantinedRow, Question, question_id

RAW_CAP = 64 * 1024
_JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")
_ROW_BATCH = 1024


class DatasetError(ValueError):
    """A dataset cannot be read: missing path, bad configuration, or a malformed row (with its place)."""


class _BadRow(Exception):
    """A row-level problem; becomes a DatasetError or a QuarantinedRow with the row's place."""


@dataclass
class QuestionSet:
    """The questions of a dataset and the rows set aside."""

    questions: list[Question] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    rows_read: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows_read,
            "questions": len(self.questions),
            "quarantined": len(self.quarantined),
        }


@dataclass(frozen=True)
class RawRow:
    """One row before mapping: its place, its parsed value (or the parse error) and its raw text."""

    file: str
    line: int
    row_kind: Literal["line", "row"]
    value: object
    raw: str
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.row_kind == "line" else f"{self.file}:row {self.line}"


def load_questions(spec: DatasetSpec, *, base_dir: str | Path | None = None) -> QuestionSet:
    """Read the whole dataset (see the module docstring); relative paths resolve against `base_dir`."""
    result = QuestionSet()
    for item in iter_questions(spec, base_dir=base_dir):
        result.rows_read += 1
        if isinstance(item, Question):
            result.questions.append(item)
        else:
            result.quarantined.append(item)
    return result


def iter_questions(
    spec: DatasetSpec, *, base_dir: str | Path | None = None
) -> Iterator[Question | QuarantinedRow]:
    """Stream one Question or QuarantinedRow per row read, raising DatasetError under on_bad_row=fail."""
    _check_mapping(spec)
    path = Path(spec.path) if base_dir is None else Path(base_dir) / spec.path
    default_source = _dataset_name(path)
    first_seen: dict[str, str] = {}
    for count, row in enumerate(_iter_raw_rows(spec, path), start=1):
        try:
            question = _to_question(row, spec, default_source)
            if question.id in first_seen:
                raise _BadRow(f"duplicate question id {question.id!r} (first at {first_seen[question.id]})")
            first_seen[question.id] = row.where
            yield question
        except _BadRow as bad:
            if spec.on_bad_row is BadRowPolicy.fail:
                raise DatasetError(f"{row.where}: {bad}") from None
            yield QuarantinedRow(
                file=row.file, line=row.line, row_kind=row.row_kind, reason=str(bad), raw=row.raw[:RAW_CAP]
            )
        if spec.limit is not None and count >= spec.limit:
            return


def _check_mapping(spec: DatasetSpec) -> None:
    """Configuration errors, raised before any row is read."""
    if spec.task is TaskType.math and not spec.fields.answer:
        raise DatasetError(f"dataset {spec.path}: task math needs a reference answer; set fields.answer")
    if spec.task is TaskType.code and not spec.fields.tests:
        raise DatasetError(f"dataset {spec.path}: task code needs tests; set fields.tests")


def _dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _detect_format(spec: DatasetSpec, path: Path) -> str:
    if not path.exists():
        raise DatasetError(f"dataset path {path} does not exist")
    if spec.format != "auto":
        return spec.format
    if path.is_dir():
        has_hf = (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
        return "hf_disk" if has_hf else "shards"
    if path.name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if path.name.endswith(".parquet"):
        return "parquet"
    raise DatasetError(f"dataset {path}: unknown file type (expected .jsonl, .jsonl.gz, .json or .parquet)")


def _iter_raw_rows(spec: DatasetSpec, path: Path) -> Iterator[RawRow]:
    kind = _detect_format(spec, path)
    if kind == "hf_disk":
        yield from _iter_hf_disk(path, spec.split)
    elif path.is_dir():
        for shard in _shard_files(path, kind):
            yield from _iter_file(shard, "parquet" if shard.name.endswith(".parquet") else "jsonl")
    else:
        yield from _iter_file(path, kind)


def _shard_files(directory: Path, kind: str) -> list[Path]:
    wanted = {"jsonl": _JSONL_SUFFIXES, "parquet": (".parquet",)}.get(kind, (*_JSONL_SUFFIXES, ".parquet"))
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(wanted))
    if not files:
        raise DatasetError(f"dataset directory {directory}: no shard files ({', '.join(wanted)})")
    return files


def _iter_file(path: Path, kind: str) -> Iterator[RawRow]:
    return _iter_parquet_rows(path) if kind == "parquet" else iter_jsonl_rows(path)


def iter_file_rows(path: Path) -> Iterator[RawRow]:
    """The raw rows of one JSONL or Parquet file, by suffix (stage inputs such as responses files)."""
    return _iter_file(path, "parquet" if path.name.endswith(".parquet") else "jsonl")


def _open_text(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    return path.open("rb")


def iter_jsonl_rows(path: Path) -> Iterator[RawRow]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue  # blank lines (a trailing newline, a separator) are not rows
            yield _parse_line(str(path), number, line)


def _parse_line(file: str, number: int, line: bytes) -> RawRow:
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raw = line.decode("utf-8", errors="replace")
        return RawRow(file, number, "line", None, raw, f"not UTF-8 text (byte {error.start})")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return RawRow(
            file, number, "line", None, text, f"not valid JSON ({error.msg} at column {error.colno})"
        )
    return RawRow(file, number, "line", value, text)


def _table_row(file: str, index: int, value: dict[str, Any]) -> RawRow:
    return RawRow(file, index, "row", value, json.dumps(value, default=str, ensure_ascii=False))


def _iter_parquet_rows(path: Path) -> Iterator[RawRow]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise DatasetError(f"{path}: not a readable Parquet file ({error})") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=_ROW_BATCH):
        for value in batch.to_pylist():
            yield _table_row(str(path), index, value)
            index += 1


def _iter_hf_disk(path: Path, split: str | None) -> Iterator[RawRow]:
    import datasets  # imported here: it costs a second or two and only this input form needs it

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise DatasetError(f"dataset {path}: not a datasets.save_to_disk directory ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = sorted(loaded)
        if split is None and len(splits) != 1:
            raise DatasetError(f"dataset {path}: a DatasetDict with splits {splits}; set split")
        chosen = split or splits[0]
        if chosen not in loaded:
            raise DatasetError(f"dataset {path}: no split {chosen!r} (splits: {splits})")
        loaded, file = loaded[chosen], f"{path}[{chosen}]"
    else:
        file = str(path)
    for index, value in enumerate(loaded):
        yield _table_row(file, index, value)


def _to_question(row: RawRow, spec: DatasetSpec, default_source: str) -> Question:
    if row.error:
        raise _BadRow(row.error)
    if not isinstance(row.value, dict):
        raise _BadRow(f"expected a JSON object, got {_type_name(row.value)}")
    value: dict[str, Any] = row.value
    names = spec.fields
    problem = _text_field(value, names.problem, required=True, why="the question text", option="problem")
    source = (
        _text_field(value, names.source, required=True, why="the source", option="source") or default_source
    )
    answer = _text_field(
        value,
        names.answer,
        required=spec.task is TaskType.math,
        why=f"task {spec.task.value} needs a reference answer",
        option="answer",
    )
    tests = _tests_field(value, names.tests) if spec.task is TaskType.code else None
    ident = _id_field(value, names.id) or question_id(problem or "", source)
    mapped = {names.id, names.problem, names.source, names.answer}
    if spec.task is TaskType.code:
        mapped.add(names.tests)
    meta = {k: v for k, v in value.items() if k not in mapped}
    try:
        return Question(
            id=ident,
            task=spec.task,
            problem=problem or "",
            answer=answer,
            tests=tests,
            source=source,
            meta=meta,
        )
    except ValidationError as error:
        raise _BadRow(validation_summary(error)) from None


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _text_field(
    value: dict[str, Any], name: str | None, *, required: bool, why: str, option: str
) -> str | None:
    """A string field (numbers accepted and kept as text); None when not mapped or absent and optional."""
    if name is None:
        return None
    if name not in value or value[name] is None:
        if required:
            raise _BadRow(f"field {name!r} is missing ({why}; set fields.{option} to map another field)")
        return None
    field_value = value[name]
    if isinstance(field_value, (int, float)) and not isinstance(field_value, bool):
        field_value = str(field_value)
    if not isinstance(field_value, str):
        raise _BadRow(f"field {name!r} must be a string, got {_type_name(field_value)}")
    if not field_value.strip():
        raise _BadRow(f"field {name!r} is empty ({why})")
    return field_value


def _tests_field(value: dict[str, Any], name: str | None) -> dict[str, Any]:
    assert name is not None  # _check_mapping refused code datasets without a tests field
    if name not in value or value[name] is None:
        raise _BadRow(
            f"field {name!r} is missing (task code needs tests; set fields.tests to map another field)"
        )
    try:
        return decode_tests(value[name])
    except ValueError as error:
        raise _BadRow(f"field {name!r} {error}") from None


def decode_tests(value: object) -> dict[str, Any]:
    """A code question's tests: an object, or a string holding one (common in exported datasets)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"is a string but not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object (or a string holding one), got {_type_name(value)}")
    return value


def _id_field(value: dict[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    if name not in value or value[name] is None:
        raise _BadRow(f"field {name!r} is missing (the question id; set fields.id to map another field)")
    ident = value[name]
    if isinstance(ident, bool) or not isinstance(ident, (str, int)):
        raise _BadRow(f"field {name!r} must be a string or integer id, got {_type_name(ident)}")
    if not str(ident).strip():
        raise _BadRow(f"field {name!r} is empty (the question id)")
    return str(ident)


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(place, row) of a JSONL or Parquet file (by suffix); a malformed row raises with file:line."""
    for raw in iter_file_rows(path):
        if raw.error is not None or not isinstance(raw.value, dict):
            raise ValueError(f"{raw.where}: {raw.error or 'expected a JSON object'}")
        yield raw.where, raw.value
