"""Turn a pydantic JSON schema into a Kubernetes *structural* OpenAPI v3 schema.

Called by `adacot.api.codegen.crds` for each resource's spec and status. Kubernetes only accepts CRD schemas
that are structural: every node has a type, no `$ref`, unions only in narrow forms, no
`additionalProperties` beside `properties`, OpenAPI-3.0 style exclusive bounds, and defaults and
patterns it can evaluate. pydantic emits JSON Schema 2020-12, so this module inlines `$defs`, folds
`anyOf: [X, null]` into `nullable`, merges simple unions (Literal unions, int|float, int|str) and
raises `SchemaError` naming the field path for anything it cannot express faithfully (discriminated
unions, tuples, recursive models, RE2-incompatible patterns). It never guesses: a silently looser
CRD would accept objects the operator later rejects.

Not covered: `x-kubernetes-list-type: map`, embedded resources and multiple versions; the models do
not need them yet.
"""

from __future__ import annotations

import re
from typing import Any

Schema = dict[str, Any]

_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
_TYPES = _SCALAR_TYPES | {"object", "array"}
# Formats Kubernetes validates the same way pydantic does. Others are dropped: "duration", for one,
# means a Go duration ("1h30m") to the API server but ISO-8601 ("PT1H30M") to pydantic.
_KEPT_FORMATS = frozenset({"date", "date-time", "byte", "int32", "int64", "float", "double", "uuid"})
# Keys copied through unchanged after their children are converted.
_PLAIN_KEYS = (
    "description", "type", "format", "enum", "default", "minimum", "exclusiveMinimum", "maximum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "minProperties", "maxProperties", "nullable", "required",
)  # fmt: skip
_DROPPED_KEYS = frozenset({"title", "examples", "deprecated", "readOnly", "writeOnly", "$defs", "$schema"})
# Output key order, so that the YAML reads like a hand-written CRD and diffs stay small.
_KEY_ORDER = (*_PLAIN_KEYS, "properties", "additionalProperties", "items")
# Go's RE2 has no lookaround and no backreferences; the API server rejects such patterns.
_NON_RE2 = re.compile(r"\(\?[=!<]|\(\?P=|\\[1-9]")
# Keys that keep a status schema structural; everything else is validation, which status skips.
_STATUS_KEYS = frozenset(
    {"description", "type", "nullable", "properties", "additionalProperties", "items"}
    | {"x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-list-type"}
    | {"x-kubernetes-map-type"}
)


class SchemaError(ValueError):
    """A model construct that has no faithful structural-schema form; the message names the field."""


def to_structural(node: Schema, defs: Schema, path: str) -> Schema:
    """Convert one pydantic schema node (with the document's `$defs`) into a structural schema.

    `path` is the dotted field path used in error messages, e.g. "GradingRun.spec".
    """
    return _Converter(defs).convert(node, path, ())


def strip_validation(node: Schema) -> Schema:
    """Keep only the keys that give a schema its shape (types, fields, descriptions).

    Status is written by the operator, not by people: validating it would only turn an operator bug
    into a failed status update, which hides the state of the resource.
    """
    out: Schema = {}
    for key, value in node.items():
        if key not in _STATUS_KEYS:
            continue
        if key == "properties":
            out[key] = {name: strip_validation(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strip_validation(value)
        else:
            out[key] = value
    return out


class _Converter:
    def __init__(self, defs: Schema) -> None:
        self._defs = defs

    def convert(self, node: Schema, path: str, refs: tuple[str, ...]) -> Schema:
        node, refs = self._flatten(node, path, refs)
        while "anyOf" in node:
            node = self._fold_union(node, path, refs)
            node, refs = self._flatten(node, path, refs)
        for key in ("oneOf", "allOf", "not", "prefixItems", "discriminator", "patternProperties"):
            if key in node:
                raise SchemaError(f"{path}: `{key}` has no structural form; use a plain model, a Literal "
                                  "or an enum with optional sub-blocks and a CEL rule instead")  # fmt: skip
        return self._convert_plain(node, path, refs)

    def _flatten(self, node: Schema, path: str, refs: tuple[str, ...]) -> tuple[Schema, tuple[str, ...]]:
        """Inline `$ref` and single-element `allOf`; the referring node's keys win (its description
        is the field's, more specific than the model's docstring), CEL rules of both are kept."""
        while "$ref" in node or ("allOf" in node and len(node["allOf"]) == 1):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                if name in refs:
                    raise SchemaError(f"{path}: recursive model {name} cannot be inlined into a CRD")
                if name not in self._defs:
                    raise SchemaError(f"{path}: unresolved reference {node['$ref']}")
                target, refs = self._defs[name], (*refs, name)
                rest = {k: v for k, v in node.items() if k != "$ref"}
            else:
                target = node["allOf"][0]
                rest = {k: v for k, v in node.items() if k != "allOf"}
            node = _merge(target, rest)
        return node, refs

    def _fold_union(self, node: Schema, path: str, refs: tuple[str, ...]) -> Schema:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) < len(node["anyOf"]):
            rest["nullable"] = True
        if len(branches) == 1:
            return _merge(branches[0], rest)
        flat = [self._flatten(b, path, refs)[0] for b in branches]
        return _merge(_merge_simple_union(flat, path), rest)

    def _convert_plain(self, node: Schema, path: str, refs: tuple[str, ...]) -> Schema:
        unknown = set(node) - set(_KEY_ORDER) - _DROPPED_KEYS - {"const", "uniqueItems"}
        unknown = {k for k in unknown if not k.startswith("x-kubernetes-")}
        if unknown:
            raise SchemaError(f"{path}: unsupported schema keys {sorted(unknown)}")
        out: Schema = {k: node[k] for k in _PLAIN_KEYS if k in node}
        if "description" in out:
            out["description"] = clean_description(out["description"])
        _normalise_scalars(out, node, path)
        if "properties" in node:
            out["properties"] = {
                name: self.convert(child, f"{path}.{name}", refs)
                for name, child in sorted(node["properties"].items())
            }
        if "required" in out:
            out["required"] = sorted(out["required"])
        self._convert_containers(out, node, path, refs)
        out.update({k: v for k, v in node.items() if k.startswith("x-kubernetes-")})
        if "x-kubernetes-validations" in out:
            out["x-kubernetes-validations"] = [_rule_order(r) for r in out["x-kubernetes-validations"]]
        if "type" not in out and not out.get("x-kubernetes-int-or-string"):
            # An untyped node (typing.Any) is genuinely free-form: say so rather than guess a type.
            out["x-kubernetes-preserve-unknown-fields"] = True
        return {k: out[k] for k in sorted(out, key=_key_rank)}

    def _convert_containers(self, out: Schema, node: Schema, path: str, refs: tuple[str, ...]) -> None:
        extra = node.get("additionalProperties")
        if extra is True or extra == {}:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            if "properties" in node:
                raise SchemaError(f"{path}: a model with both fields and extra keys is not structural")
            out["additionalProperties"] = self.convert(extra, f"{path}[*]", refs)
        if "items" in node:
            out["items"] = self.convert(node["items"], f"{path}[*]", refs)
        if node.get("uniqueItems"):
            # uniqueItems is forbidden in CRDs (quadratic); a set of scalars is the Kubernetes idiom.
            if out.get("items", {}).get("type") not in _SCALAR_TYPES:
                raise SchemaError(f"{path}: a set of non-scalar items has no structural form; use a list")
            out["x-kubernetes-list-type"] = "set"


def _merge(base: Schema, over: Schema) -> Schema:
    """`over`'s keys win, except CEL rules, which accumulate (model rules first, then field rules)."""
    merged = {**base, **over}
    rules = [*base.get("x-kubernetes-validations", []), *over.get("x-kubernetes-validations", [])]
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _merge_simple_union(branches: list[Schema], path: str) -> Schema:
    """Literal unions become one enum; int|float becomes number; int|str becomes int-or-string."""
    types = {b.get("type") for b in branches}
    if all("enum" in b or "const" in b for b in branches) and len(types) == 1:
        values = [v for b in branches for v in b.get("enum", [b.get("const")])]
        return {"type": types.pop(), "enum": list(dict.fromkeys(values))}
    bare = all(set(b) <= {"type"} for b in branches)
    if bare and types == {"integer", "number"}:
        return {"type": "number"}
    if bare and types == {"integer", "string"}:
        return {"x-kubernetes-int-or-string": True}
    raise SchemaError(f"{path}: the union {sorted(map(str, types))} has no structural form; use one "
                      "type, or a model with optional alternatives and a CEL one-of rule")  # fmt: skip


def _normalise_scalars(out: Schema, node: Schema, path: str) -> None:
    """Enum/const, bounds, formats, patterns and defaults in the forms Kubernetes accepts."""
    if "type" in out and (not isinstance(out["type"], str) or out["type"] not in _TYPES):
        raise SchemaError(f"{path}: type {out['type']!r} is not a single OpenAPI type")
    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in out and None in out["enum"]:
        out["enum"] = [v for v in out["enum"] if v is not None]
        out["nullable"] = True
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema 2020-12 gives the bound itself; OpenAPI 3.0 a flag beside minimum/maximum.
        if bound in out and not isinstance(out[bound], bool):
            out[plain], out[bound] = out[bound], True
    if out.get("format") not in _KEPT_FORMATS:
        out.pop("format", None)
    if "pattern" in out and _NON_RE2.search(out["pattern"]):
        raise SchemaError(f"{path}: pattern {out['pattern']!r} uses lookaround or backreferences, "
                          "which Kubernetes (RE2) rejects")  # fmt: skip
    if out.get("default", 0) is None:
        del out["default"]  # "absent" already means None; a null default would fight `nullable`.


def clean_description(text: str) -> str:
    """Docstring line breaks become spaces; blank-line paragraph breaks stay (kubectl explain wraps)."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n".join(p for p in paragraphs if p)


def _rule_order(rule: dict[str, Any]) -> dict[str, Any]:
    order = ("rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf")
    unknown = set(rule) - set(order)
    if "rule" not in rule or unknown:
        raise SchemaError(f"CEL rule {rule} needs `rule` and only the keys {order}")
    return {k: rule[k] for k in order if k in rule}


def _key_rank(key: str) -> tuple[int, str]:
    return (_KEY_ORDER.index(key), "") if key in _KEY_ORDER else (len(_KEY_ORDER), key)
