"""Validate an object against a generated CRD the way the API server does, without an API server.

Used by tests (CRD sample tests, the API emulator, operator tests). In the server's order: strict
field validation (unknown fields are errors, as with `kubectl apply`'s default --validate=strict),
pruning of nulls on non-nullable fields, structural defaulting, the OpenAPI schema (jsonschema,
draft 4 = OpenAPI 3.0 bound semantics), then the `x-kubernetes-validations` CEL rules with cel-python,
transition rules (`oldSelf`) only where an old object is given and the old value exists, as in
Kubernetes. metadata gets only the server's own check (name: DNS-1123 subdomain). Messages read
"spec.x.y: message".

Limits: cel-python implements core CEL (has, size, all/exists/exists_one/filter/map, ternaries,
matches, startsWith...) but not Kubernetes' extension libraries (lists.isSorted, strings.lowerAscii,
quantity, url, optional types) and does not compare int with double; such rules report an
evaluation error here. No CEL cost budget is computed. Lists are never correlated for transition
rules (Kubernetes does so only for `x-kubernetes-list-type: map`, which the CRDs do not use).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"
_MISSING: Any = object()
_CEL_RESERVED = frozenset(
    {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if"}
    | {"import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
)
_ENV = celpy.Environment()
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def load_crds(crd_dir: Path = CRD_DIR) -> dict[str, dict[str, Any]]:
    """Kind -> CRD dict, for every *.yaml CRD directly in `crd_dir`."""
    return dict(_load_crds(str(crd_dir)))


@functools.cache
def _load_crds(crd_dir: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    found = []
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                found.append((doc["spec"]["names"]["kind"], doc))
    return tuple(found)


def validate_object(obj: dict[str, Any], old: dict[str, Any] | None = None, *,
                    crds: dict[str, dict[str, Any]] | None = None) -> list[str]:  # fmt: skip
    """Every reason the API server would reject `obj` (a create, or an update of `old`); [] = valid."""
    crds = load_crds() if crds is None else crds
    kind = obj.get("kind")
    if kind not in crds:
        return [f"kind: no CRD for kind {kind!r} (known: {sorted(crds)})"]
    crd = crds[kind]
    version = crd["spec"]["versions"][0]
    expected = f"{crd['spec']['group']}/{version['name']}"
    if obj.get("apiVersion") != expected:
        return [f"apiVersion: expected {expected!r}, got {obj.get('apiVersion')!r}"]
    schema = version["schema"]["openAPIV3Schema"]
    errors = metadata_errors(obj.get("metadata"))
    errors += unknown_fields(obj, schema, "")
    new = default(obj, schema)
    errors += schema_errors(new, schema)
    old_defaulted = default(old, schema) if old is not None else _MISSING
    errors += cel_errors(_cel_root(new), _cel_root(old_defaulted), schema, "")
    return errors


def metadata_errors(meta: Any) -> list[str]:
    """The API server's own ObjectMeta checks for custom resources (name: DNS-1123 subdomain)."""
    if not isinstance(meta, dict):
        return ["metadata: required field is missing"]
    name = meta.get("name")
    if not name:
        return [] if meta.get("generateName") else ["metadata.name: name or generateName is required"]
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character"]  # fmt: skip
    return []


def unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the schema does not declare (the server's strict field validation)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or path == "metadata":
        return []
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        errors = [f"{_join(path, k)}: unknown field" for k in value if k not in props]
        for key, child in value.items():
            if key in props:
                errors += unknown_fields(child, props[key], _join(path, key))
        return errors
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [e for k, v in value.items() for e in unknown_fields(v, schema["additionalProperties"],
                                                                     _join(path, k))]  # fmt: skip
    if isinstance(value, list) and "items" in schema:
        return [e for i, v in enumerate(value) for e in unknown_fields(v, schema["items"], f"{path}[{i}]")]
    return []


def default(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of `value` with nulls pruned where not nullable and schema defaults applied, recursively
    (a defaulted object gets its own nested defaults too, as in Kubernetes)."""
    value = copy.deepcopy(value)
    _default_in_place(value, schema)
    return value


def _default_in_place(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, dict) and "properties" in schema:
        for key, prop in schema["properties"].items():
            if key in value and value[key] is None and not prop.get("nullable"):
                del value[key]
            if key not in value and "default" in prop:
                value[key] = copy.deepcopy(prop["default"])
            if key in value:
                _default_in_place(value[key], prop)
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for child in value.values():
            _default_in_place(child, schema["additionalProperties"])
    elif isinstance(value, list) and "items" in schema:
        for child in value:
            _default_in_place(child, schema["items"])


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """OpenAPI schema violations, one readable line each."""
    validator = jsonschema.Draft4Validator(_as_jsonschema(schema))
    errors = sorted(validator.iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [_describe(e) for e in errors]


def _describe(error: jsonschema.ValidationError) -> str:
    path = _path_of(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        return f"{_join(path, missing)}: required field is missing"
    return f"{path or '<root>'}: {error.message}"


@functools.cache
def _frozen_jsonschema(schema_json: str) -> dict[str, Any]:
    return _convert_for_jsonschema(json.loads(schema_json))


def _as_jsonschema(schema: dict[str, Any]) -> dict[str, Any]:
    """Converted once per distinct schema; keyed by its JSON text (C-accelerated: a YAML dump of the
    CRD schema as the key cost the API emulator ~5 ms a custom-resource write)."""
    return _frozen_jsonschema(json.dumps(schema, sort_keys=True))


def _convert_for_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI/Kubernetes extensions in plain draft-4 terms."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if "properties" in out:
        out["properties"] = {k: _convert_for_jsonschema(v) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _convert_for_jsonschema(out[key])
    return out


def cel_errors(value: Any, old: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Run the CEL rules of `schema` on `value` and, recursively, on its fields."""
    return [f"{f.path or '<root>'}: {f.message}" for f in cel_failures(value, old, schema, path)]


@dataclass(frozen=True)
class CelFailure:
    """One failed (or unevaluable) rule: where, the schema type there, the rule's reason and message."""

    path: str
    schema_type: str
    reason: str
    message: str
    evaluated: bool = True


def cel_failures(value: Any, old: Any, schema: dict[str, Any], path: str) -> list[CelFailure]:
    """The CEL rules of `schema` that `value` (an update of `old`) fails, recursively over its fields."""
    if value is _MISSING or value is None:
        return []
    failures = [f for rule in schema.get("x-kubernetes-validations", [])
                for f in _run_rule_memo(rule, value, old, schema, path)]  # fmt: skip
    if isinstance(value, dict) and "properties" in schema:
        for key, prop in schema["properties"].items():
            if key in value:
                child_old = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                failures += cel_failures(value[key], child_old, prop, _join(path, key))
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, child in value.items():
            child_old = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            failures += cel_failures(child, child_old, schema["additionalProperties"], _join(path, key))
    elif isinstance(value, list) and "items" in schema:
        for i, child in enumerate(value):
            failures += cel_failures(child, _MISSING, schema["items"], f"{path}[{i}]")
    return failures


#: `_run_rule`'s results by rule, schema node, path and the JSON of the values it reads: CEL is
#: deterministic, and interpreting it (cel-python) was most of the API emulator's cost of a custom-resource
#: write (a status patch re-checks every spec rule on an unchanged spec). The schema node is held in the
#: value so its id() is never reused while cached.
_RULE_RESULTS: dict[tuple[Any, ...], tuple[dict[str, Any], list[CelFailure]]] = {}


def _run_rule_memo(
    rule: dict[str, str], value: Any, old: Any, schema: dict[str, Any], path: str
) -> list[CelFailure]:
    try:
        olds = json.dumps(old, sort_keys=True) if "oldSelf" in rule["rule"] and old is not _MISSING else None
        key = (json.dumps(rule, sort_keys=True), id(schema), path, json.dumps(value, sort_keys=True), olds)
    except (TypeError, ValueError):  # not JSON (a test's own value): evaluate as it is
        return _run_rule(rule, value, old, schema, path)
    cached = _RULE_RESULTS.get(key)
    if cached is not None and cached[0] is schema:
        return list(cached[1])
    result = _run_rule(rule, value, old, schema, path)
    if len(_RULE_RESULTS) >= 20_000:
        _RULE_RESULTS.clear()
    _RULE_RESULTS[key] = (schema, result)
    return list(result)


def _run_rule(
    rule: dict[str, str], value: Any, old: Any, schema: dict[str, Any], path: str
) -> list[CelFailure]:
    where = path + rule.get("fieldPath", "") if path else rule.get("fieldPath", "").lstrip(".")
    transition = "oldSelf" in rule["rule"]
    if transition and old is _MISSING:
        return []  # Kubernetes skips transition rules on create and where the old value is absent
    try:
        activation = {"self": to_cel(value, schema)}
        if transition:
            activation["oldSelf"] = to_cel(old, schema)
    except TypeError:
        return []  # wrong type: already reported by the schema check, and the server stops there too
    result = _evaluate(rule["rule"], activation)
    kind, reason = schema.get("type", "object"), rule.get("reason", "FieldValueInvalid")
    if isinstance(result, celtypes.BoolType) and bool(result):
        return []
    if not isinstance(result, celtypes.BoolType):
        # cel-python reports an absent field inside && / || as an opaque overload error: name the cause.
        hint = " (it reads a field that is absent: guard it with has())" if _absent(result) else ""
        text = f"rule could not be evaluated{hint}: {rule['rule']!r}: {result}"
        return [CelFailure(where, kind, reason, text, evaluated=False)]
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    if "messageExpression" in rule:
        message = str(_evaluate(rule["messageExpression"], activation))
    return [CelFailure(where, kind, reason, message)]


def _absent(result: Any) -> bool:
    text = str(result)
    return "no such member" in text or "no such key" in text or "CELEvalError" in text


def _evaluate(expr: str, activation: dict[str, Any]) -> Any:
    try:
        return _program(expr).evaluate(activation)
    except CELEvalError as exc:
        return exc.args[0] if exc.args else exc
    except CELParseError as exc:
        return f"parse error: {exc}"


@functools.cache
def _program(expr: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(expr))


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """A JSON value as the CEL value Kubernetes gives a rule, typed by the schema: `number` fields are
    doubles even when written `1`, date-time strings are timestamps, reserved words are escaped."""
    if value is None:
        return None
    free_form = schema.get("type") == "object" and not {"properties", "additionalProperties"} & set(schema)
    if free_form or (schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema):
        return json_to_cel(value)  # untyped (root metadata, which _cel_root has already cut down)
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        kind = "integer" if isinstance(value, int) else "string"
    convert = _SCALARS.get(kind or "")
    if convert is not None:
        return convert(value, schema)
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(v, schema.get("items", {})) for v in value])
    if kind == "object" and isinstance(value, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        items = {k: (props or {}).get(k, extra if isinstance(extra, dict) else None) for k in value}
        return celtypes.MapType({celtypes.StringType(_escape(k) if props else k): to_cel(value[k], s)
                                 for k, s in items.items() if s is not None})  # fmt: skip
    raise TypeError(f"{value!r} does not match schema type {kind}")


def _string(value: Any, schema: dict[str, Any]) -> Any:
    _expect(value, str)
    if schema.get("format") == "date-time":
        return celtypes.TimestampType(value)
    return celtypes.StringType(value)


def _integer(value: Any, _: dict[str, Any]) -> Any:
    _expect(value, int)
    return celtypes.IntType(value)


def _number(value: Any, _: dict[str, Any]) -> Any:
    _expect(value, int, float)
    return celtypes.DoubleType(float(value))


def _boolean(value: Any, _: dict[str, Any]) -> Any:
    _expect(value, bool)
    return celtypes.BoolType(value)


def _expect(value: Any, *types: type) -> None:
    """JSON types as the schema means them (a bool is not an integer)."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise TypeError(f"{value!r} is not {types}")


_SCALARS = {"string": _string, "integer": _integer, "number": _number, "boolean": _boolean}


def _cel_root(obj: Any) -> Any:
    """At the root Kubernetes exposes only metadata.name and metadata.generateName to rules."""
    if not isinstance(obj, dict):
        return obj
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {k: meta[k] for k in ("name", "generateName") if k in meta}}


def _escape(name: str) -> str:
    """Kubernetes' escaping of property names that are not CEL identifiers."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    for char, word in (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__")):
        name = name.replace(char, word)
    return name


def _path_of(parts: Any) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_documents(path: Path, crds: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Validate every document of a YAML file; messages are prefixed with `file#n Kind/name`."""
    errors = []
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for n, doc in enumerate(docs):
        name = (doc.get("metadata") or {}).get("name", "?")
        errors += [f"{path.name}#{n} {doc.get('kind')}/{name}: {e}" for e in validate_object(doc, crds=crds)]
    return errors
