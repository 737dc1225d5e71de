"""Admission of custom resources as the apiextensions server does it, with its wording.

Called by store.py on create, update and patch of a custom resource. Order as in the server: unknown
fields (400 "strict decoding error" under fieldValidation=Strict, pruned with a Warning otherwise),
defaulting, then ObjectMeta, OpenAPI schema and CEL checks aggregated into one 422 Invalid whose
causes read like kube-openapi's ("spec.x: Invalid value: 3.5: spec.x in body should be less than or
equal to 2", "Unsupported value", "Required value", CEL: 'Invalid value: "object": <message>').
The checks themselves live in tests/crd_validation.py (shared with the CRD sample tests); this module
turns their findings into Status causes. Limits: see crd_validation.py (CEL extension libraries).
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

import jsonschema
from crd_validation import (
    _MISSING,
    CelFailure,
    _as_jsonschema,
    _cel_root,
    _path_of,
    cel_failures,
    default,
    unknown_fields,
)

from .errors import bad_request, invalid
from .resources import ResourceType

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def show(value: Any) -> str:
    """A value as field.Error prints it (strings quoted, numbers bare, objects by type name)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return '"object"' if isinstance(value, dict) else '"array"' if isinstance(value, list) else "null"


def name_causes(rt: ResourceType, meta: dict[str, Any]) -> list[dict[str, str]]:
    """ObjectMeta name checks: DNS-1123 label for namespaces, subdomain for everything else."""
    name = meta.get("name")
    if not name:
        return [
            cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")
        ]
    label = rt.kind == "Namespace"
    pattern, text, limit = (
        (DNS1123_LABEL, _LABEL_MESSAGE, 63) if label else (DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE, 253)
    )
    if not isinstance(name, str) or len(name) > limit or not pattern.fullmatch(name):
        return [cause("FieldValueInvalid", "metadata.name", f"Invalid value: {show(name)}: {text}")]
    return []


def admit_custom(
    rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, strictness: str
) -> tuple[dict[str, Any], list[str]]:
    """The object as stored (pruned, defaulted) and the warnings; raises ApiError when rejected."""
    schema = rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    unknown = [e.rsplit(": ", 1)[0] for e in unknown_fields(obj, schema, "")]
    if unknown and strictness == "Strict":
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {fields}"
        )
    warnings = [f'unknown field "{u}"' for u in unknown] if strictness != "Ignore" else []
    stored = default(prune(obj, schema), schema)
    causes = name_causes(rt, stored.get("metadata") or {}) + schema_causes(stored, schema)
    if not causes:
        old_stored = default(old, schema) if old is not None else _MISSING
        causes = [_cel_cause(f) for f in cel_failures(_cel_root(stored), _cel_root(old_stored), schema, "")]
    if causes:
        raise invalid(rt.kind, rt.group, (stored.get("metadata") or {}).get("name", ""), causes)
    return stored, warnings


def prune(value: Any, schema: dict[str, Any], path: str = "") -> Any:
    """Drop fields the structural schema does not declare (metadata is left to the server)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or path == "metadata":
        return value
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: prune(v, props[k], f"{path}.{k}") for k, v in value.items() if k in props}
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: prune(v, schema["additionalProperties"], f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], f"{path}[]") for v in value]
    return value


def schema_causes(obj: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, str]]:
    root = {
        **schema,
        "properties": {k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"},
    }
    validator = jsonschema.Draft4Validator(_as_jsonschema(root))
    errors = sorted(validator.iter_errors(obj), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [_schema_cause(e) for e in errors]


def _schema_cause(error: jsonschema.ValidationError) -> dict[str, str]:
    path, kind, limit, value = (
        _path_of(error.absolute_path),
        error.validator,
        cast(Any, error.validator_value),
        error.instance,
    )
    where = f"{path} in body"
    if kind == "required":
        missing = str(error.message).split("'")[1]
        return cause("FieldValueRequired", f"{path}.{missing}" if path else missing, "Required value")
    if kind == "enum":
        allowed = ", ".join(show(v) for v in limit)
        return cause(
            "FieldValueNotSupported", path, f"Unsupported value: {show(value)}: supported values: {allowed}"
        )
    if kind == "type":
        actual = _json_type(value)
        return cause(
            "FieldValueTypeInvalid",
            path,
            f'Invalid value: "{actual}": {where} must be of type {_first(limit)}: "{actual}"',
        )
    return cause(
        "FieldValueInvalid", path, f"Invalid value: {show(value)}: {_detail(str(kind), limit, where)}"
    )


def _detail(kind: str, limit: Any, where: str) -> str:
    texts = {
        "maximum": f"should be less than or equal to {show(limit)}",
        "minimum": f"should be greater than or equal to {show(limit)}",
        "exclusiveMaximum": f"should be less than {show(limit)}",
        "exclusiveMinimum": f"should be greater than {show(limit)}",
        "maxLength": f"should be at most {limit} chars long",
        "minLength": f"should be at least {limit} chars long",
        "maxItems": f"should have at most {limit} items",
        "minItems": f"should have at least {limit} items",
        "maxProperties": f"should have at most {limit} properties",
        "minProperties": f"should have at least {limit} properties",
        "pattern": f"should match '{limit}'",
        "multipleOf": f"should be a multiple of {show(limit)}",
        "uniqueItems": "shouldn't contain duplicates",
        "format": f"must be of type {limit}",
        "oneOf": "must validate one and only one schema (oneOf)",
        "anyOf": "must validate at least one schema (anyOf)",
        "not": "must not validate the schema (not)",
    }
    return f"{where} {texts.get(kind, f'failed {kind} {limit}')}"


def _first(limit: Any) -> str:
    return str(limit[0] if isinstance(limit, list) else limit)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _cel_cause(failure: CelFailure) -> dict[str, str]:
    if not failure.evaluated:
        return cause("FieldValueInvalid", failure.path, f'Invalid value: "object": {failure.message}')
    prefix = {
        "FieldValueForbidden": "Forbidden",
        "FieldValueRequired": "Required value",
        "FieldValueDuplicate": "Duplicate value",
    }.get(failure.reason)
    body = (
        f"{prefix}: {failure.message}"
        if prefix
        else f'Invalid value: "{failure.schema_type}": {failure.message}'
    )
    return cause(failure.reason, failure.path, body)
