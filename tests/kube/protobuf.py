"""Decoding of the protobuf request bodies kubectl's `create` generators send for built-in kinds.

kubectl 1.32 posts `kubectl create namespace|configmap|secret|serviceaccount` as
application/vnd.kubernetes.protobuf (the "k8s\\0" magic, a runtime.Unknown envelope, then the typed
message). Called by app.py, which answers JSON whatever the Accept header prefers (clients take the
response's Content-Type). Only those four kinds and the ObjectMeta fields a new object carries are
decoded (field numbers from k8s.io/api generated.proto); any other protobuf body is refused with 415,
so a test fails loudly instead of storing half an object. Use `kubectl apply` for other kinds.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"
Fields = list[tuple[int, Any]]


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def fields(data: bytes) -> Fields:
    """(field number, int or bytes) pairs of one message; fixed-width fields are skipped."""
    out: Fields = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            out.append((number, data[i : i + size]))
            i += size
        else:
            i += {1: 8, 5: 4}[wire]
    return out


def _strings(fs: Fields, n: int) -> list[str]:
    return [v.decode() for k, v in fs if k == n]


def _string(fs: Fields, n: int) -> str | None:
    found = _strings(fs, n)
    return found[-1] if found else None


def _map(fs: Fields, n: int, decode: Callable[[bytes], Any] = bytes.decode) -> dict[str, Any]:
    entries = [dict(fields(v)) for k, v in fs if k == n]
    return {e.get(1, b"").decode(): decode(e.get(2, b"")) for e in entries}


def _meta(data: bytes) -> dict[str, Any]:
    fs = fields(data)
    meta: dict[str, Any] = {
        "name": _string(fs, 1),
        "generateName": _string(fs, 2),
        "namespace": _string(fs, 3),
        "labels": _map(fs, 11),
        "annotations": _map(fs, 12),
        "finalizers": _strings(fs, 14),
    }
    return {k: v for k, v in meta.items() if v}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _metadata_only(fs: Fields) -> dict[str, Any]:
    """Kinds whose new objects carry nothing but metadata (spec and status are the server's)."""
    return {}


def _configmap(fs: Fields) -> dict[str, Any]:
    body = {"data": _map(fs, 2), "binaryData": _map(fs, 3, _b64)}
    return {k: v for k, v in body.items() if v}


def _secret(fs: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {"data": _map(fs, 2, _b64), "type": _string(fs, 3), "stringData": _map(fs, 4)}
    return {k: v for k, v in body.items() if v}


KINDS = {
    "Namespace": _metadata_only,
    "ConfigMap": _configmap,
    "Secret": _secret,
    "ServiceAccount": _metadata_only,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of one of KINDS."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "protobuf body without the k8s magic prefix")
    envelope = dict(fields(body[len(MAGIC) :]))
    type_meta = dict(fields(envelope.get(1, b"")))
    api_version, kind = type_meta.get(1, b"").decode(), type_meta.get(2, b"").decode()
    if kind not in KINDS:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the emulator decodes protobuf only for {sorted(KINDS)}, "
            f"not {kind}: send JSON (kubectl apply -f)",
        )
    message = fields(envelope.get(2, b""))
    meta = next((_meta(v) for k, v in message if k == 1), {})
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **KINDS[kind](message)}
