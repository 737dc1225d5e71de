"""Reading and writing files of records (JSONL and Parquet), streaming, with file:line errors.

Callers: the artifact store (shards, merge), the dataset loader, and stages that export files.

JSONL: one `model_dump_json()` per line, UTF-8, "\\n" line ends; read one line at a time, so a file of any
size streams in constant memory.

Parquet (pyarrow): one column per top-level field of the record type. Scalar fields (str, int, float, bool,
enums, literals) are native columns; every nested field (verdicts, lists, dicts, sub-records) is a JSON
string column. JSON rather than Arrow structs because several fields are free-form (`tests`, `meta`,
`metrics`) and differ in shape from row to row, which a struct column cannot hold; the nested columns
are listed in the file's schema metadata (`adacot.json_columns`) so a reader knows what to decode.
Rows are written and read in batches (`PARQUET_BATCH`), so memory stays bounded.

Limits: no compression choice for JSONL; Parquet files are written with pyarrow's default (snappy).
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

PARQUET_BATCH = 1024
_JSON_COLUMNS_KEY = b"adacot.json_columns"
_RECORD_TYPE_KEY = b"adacot.record_type"


class ArtifactError(Exception):
    """A record file or artifact directory is malformed, incomplete or modified."""


@dataclass(frozen=True)
class FileStats:
    """What the manifest records of one written file."""

    records: int
    sha256: str
    bytes: int


def sha256_file(path: Path) -> str:
    """sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> Literal["jsonl", "parquet"]:
    """The record-file format a name implies; anything else is an error naming the file."""
    if path.name.endswith(".jsonl"):
        return "jsonl"
    if path.name.endswith(".parquet"):
        return "parquet"
    raise ArtifactError(f"{path}: unknown record file type (expected .jsonl or .parquet)")


def validation_summary(error: ValidationError) -> str:
    """One line per failing field, 'field.path: message', without pydantic's URLs."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def write_records(path: Path, records: Iterable[BaseModel], record_type: type[BaseModel]) -> FileStats:
    """Write records to `path` in the format its suffix names, fsync it, and return its stats."""
    if file_format(path) == "jsonl":
        count = write_jsonl(path, records)
    else:
        count = write_parquet(path, records, record_type)
    return FileStats(records=count, sha256=sha256_file(path), bytes=path.stat().st_size)


def iter_records(path: Path, record_type: type[T]) -> Iterator[T]:
    """Stream the records of a JSONL or Parquet file as `record_type`."""
    if file_format(path) == "jsonl":
        return iter_jsonl(path, record_type)
    return iter_parquet(path, record_type)


def write_jsonl(path: Path, records: Iterable[BaseModel]) -> int:
    """Write one JSON line per record and fsync; returns the record count."""
    count = 0
    with path.open("wb") as handle:
        for record in records:
            handle.write(record.model_dump_json().encode() + b"\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    return count


def parse_record_line(line: bytes, record_type: type[T], where: str) -> T:
    """Validate one JSONL line, raising ArtifactError that names `where` (file:line)."""
    try:
        return record_type.model_validate_json(line)
    except ValidationError as error:
        summary = validation_summary(error)
        raise ArtifactError(f"{where}: not a valid {record_type.__name__}: {summary}") from None


def iter_jsonl(path: Path, record_type: type[T]) -> Iterator[T]:
    """Stream records from a JSONL file; blank lines are skipped, a bad line names file and line."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield parse_record_line(line, record_type, f"{path}:{number}")


def _scalar_arrow_type(annotation: Any) -> pa.DataType | None:
    """Arrow type of a scalar field annotation (Optional stripped); None means 'store as JSON'."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar_arrow_type(args[0]) if len(args) == 1 else None
    if origin is Literal:
        return pa.string() if all(isinstance(a, str) for a in get_args(annotation)) else None
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return pa.string()
        # bool before int: bool is a subclass of int.
        for python_type, arrow_type in ((bool, pa.bool_()), (int, pa.int64()), (float, pa.float64())):
            if issubclass(annotation, python_type):
                return arrow_type
        if issubclass(annotation, str):
            return pa.string()
    return None


def arrow_schema(record_type: type[BaseModel]) -> tuple[pa.Schema, list[str]]:
    """The Parquet schema of a record type and the names of its JSON-encoded columns."""
    fields, json_columns = [], []
    for name, info in record_type.model_fields.items():
        arrow_type = _scalar_arrow_type(info.annotation)
        if arrow_type is None:
            json_columns.append(name)
            arrow_type = pa.string()
        fields.append(pa.field(name, arrow_type))
    metadata = {_JSON_COLUMNS_KEY: json.dumps(json_columns).encode(), _RECORD_TYPE_KEY: record_type.__name__}
    return pa.schema(fields, metadata=metadata), json_columns


def _to_row(record: BaseModel, json_columns: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = record.model_dump(mode="json")
    for name in json_columns:
        if row[name] is not None:
            row[name] = json.dumps(row[name], ensure_ascii=False, sort_keys=True)
    return row


def write_parquet(path: Path, records: Iterable[BaseModel], record_type: type[BaseModel]) -> int:
    """Write records as Parquet in batches of PARQUET_BATCH rows; returns the record count."""
    schema, json_columns = arrow_schema(record_type)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(_to_row(record, json_columns))
            count += 1
            if len(batch) == PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return count


def parquet_json_columns(schema: pa.Schema) -> list[str]:
    """JSON-encoded columns named in a file's metadata (none for files adacot did not write)."""
    metadata = schema.metadata or {}
    raw = metadata.get(_JSON_COLUMNS_KEY)
    return list(json.loads(raw)) if raw else []


def iter_parquet(path: Path, record_type: type[T]) -> Iterator[T]:
    """Stream records from a Parquet file written by `write_parquet`; errors name file and row index."""
    parquet = pq.ParquetFile(path)
    json_columns = parquet_json_columns(parquet.schema_arrow)
    index = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            for name in json_columns:
                if row.get(name) is not None:
                    row[name] = json.loads(row[name])
            try:
                yield record_type.model_validate(row)
            except ValidationError as error:
                summary = validation_summary(error)
                where = f"{path}:row {index}"
                raise ArtifactError(f"{where}: not a valid {record_type.__name__}: {summary}") from None
            index += 1
