"""Load adacot resources from YAML: the one parser the CLI, the local runner, the operator's tests and the
stage pods share.

A file may hold one or many documents (`---`), exactly what `kubectl apply -f` takes; empty documents are
skipped. Every problem raises `ResourceError` naming the file, the document (1-based, counting empty
ones so the number matches the separators), its kind/name when readable, each failing field as a dotted
camelCase path, and the line of that field. Limits: only kinds of adacot.dev/v1alpha1 are accepted (a
file mixing in ConfigMaps or Secrets is an error, not silently filtered), and cross-document references
are not checked here (see `adacot.api.dependency_graph`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import yaml
from pydantic import BaseModel, ValidationError

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.common import DNS1123_LABEL
from adacot.api.quantity import QUANTITY
from adacot.api.resource import API_VERSION

# Regular expressions say little to a person; these say what the pattern means.
PATTERN_WORDS = {
    DNS1123_LABEL: "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with "
    "a letter or digit",
    QUANTITY: "must be a Kubernetes quantity such as 500m, 8 or 64Gi",
}


class ResourceError(ValueError):
    """A resource file that cannot be loaded; the message says where and why, one problem per line."""


def load_resources(source: str | Path | TextIO, *, filename: str | None = None) -> list[AnyResource]:
    """Parse every resource in `source`.

    `source` is a Path (a file), a stream, or a str: a str holding a newline is YAML text, any other
    str is a file path. `filename` overrides the name used in messages.
    """
    text, name = _read(source, filename)
    resources: list[AnyResource] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, node, data in _documents(text, name):
        if data is None:
            continue
        resource = _build(data, node, f"{name}, document {index}")
        key = (resource.kind, resource.metadata.namespace, resource.metadata.name)
        if key in seen:
            raise ResourceError(
                f"{name}, document {index} ({key[0]}/{key[2]}): duplicate of document "
                f"{seen[key]} (same kind, namespace and name)"
            )
        seen[key] = index
        resources.append(resource)
    return resources


def dump_resource(resource: BaseModel) -> dict[str, Any]:
    """The resource as a camelCase dict for YAML/JSON, without None values.

    A None is kept (as null) only where the field's default is not None, so that loading the dump
    gives back an equal object.
    """
    data = resource.model_dump(mode="json", by_alias=True)
    _drop_default_nones(resource, data)
    return data


def _read(source: str | Path | TextIO, filename: str | None) -> tuple[str, str]:
    if isinstance(source, str) and "\n" in source:
        return source, filename or "<string>"
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), filename or str(source)
        except OSError as err:
            raise ResourceError(f"{filename or source}: cannot read: {err.strerror or err}") from err
        except UnicodeDecodeError as err:
            raise ResourceError(f"{filename or source}: not UTF-8 text ({err.reason})") from err
    return source.read(), filename or str(getattr(source, "name", "<stream>"))


def _documents(text: str, name: str) -> Iterator[tuple[int, yaml.Node | None, Any]]:
    """(1-based index, node, plain data) per document; the node gives line numbers for messages."""
    try:
        nodes = list(yaml.compose_all(io.StringIO(text), Loader=yaml.SafeLoader))
        datas = list(yaml.safe_load_all(io.StringIO(text)))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ResourceError(f"{name}{where}: invalid YAML: {problem}") from err
    for index, (node, data) in enumerate(zip(nodes, datas, strict=True), start=1):
        if node is not None:
            _reject_duplicate_keys(node, f"{name}, document {index}")
        yield index, node, data


def _reject_duplicate_keys(node: yaml.Node, where: str) -> None:
    # PyYAML keeps the last of two equal keys silently; kubectl rejects them, and so do we.
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in keys:
                raise ResourceError(f"{where}, line {key_node.start_mark.line + 1}: duplicate key '{key}'")
            keys.add(key)
            _reject_duplicate_keys(value_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, where)


def _build(data: Any, node: yaml.Node | None, where: str) -> AnyResource:
    if not isinstance(data, dict):
        raise ResourceError(
            f"{where}: expected a mapping with apiVersion, kind, metadata and spec, got {type(data).__name__}"
        )
    metadata = data.get("metadata")
    kind, name = data.get("kind"), metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and isinstance(name, str):
        where = f"{where} ({kind}/{name})"
    if data.get("apiVersion") != API_VERSION:
        raise ResourceError(f"{where}: apiVersion: expected {API_VERSION}, got {data.get('apiVersion')!r}")
    cls = RESOURCE_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ResourceError(f"{where}: kind: expected one of {', '.join(RESOURCE_KINDS)}, got {kind!r}")
    try:
        return cast(AnyResource, cls.model_validate(data))
    except ValidationError as err:
        lines = [f"{where}: {_describe(e, node)}" for e in err.errors(include_url=False)]
        raise ResourceError("\n".join(lines)) from None


def _describe(error: Any, node: yaml.Node | None) -> str:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        message = PATTERN_WORDS.get(pattern, message) + f" (got {error['input']!r})"
    path = format_path(loc) or "(document)"
    line = _line_of(node, loc)
    return f"{path}: {message}" + (f" (line {line})" if line else "")


def format_path(loc: tuple[Any, ...]) -> str:
    """Pydantic's error location as a dotted camelCase path: spec.sources[0].path."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest node on `loc` that exists in the file."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if str(k.value) == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return cast(yaml.Node, node.value[part])
    return None


def _drop_default_nones(model: BaseModel, data: dict[str, Any]) -> None:
    for name, info in type(model).model_fields.items():
        key, value = info.alias or name, getattr(model, name)
        if value is None:
            if info.default is None and info.default_factory is None:
                data.pop(key, None)
        elif isinstance(value, BaseModel):
            _drop_default_nones(value, data[key])
        elif isinstance(value, list):
            for item, plain in zip(value, data[key], strict=True):
                if isinstance(item, BaseModel):
                    _drop_default_nones(item, plain)
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel):
                    _drop_default_nones(item, data[key][str(k)])
