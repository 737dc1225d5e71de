"""The checks the API server runs on a CustomResourceDefinition itself before serving it: its name,
and that every x-kubernetes-validations rule compiles against the schema it sits in.

Called by store.py when a CRD is created or updated. A rule that does not parse, or that reads a
field the schema does not declare (`self.sampling.n` where `sampling` has no `n`), makes the real
server reject the whole CRD with "compilation failed"; so does this check, with the server's field
path (spec.versions[i].schema.openAPIV3Schema.properties[a]...x-kubernetes-validations[j].rule).
Limits: field references are followed through `self.`/`oldSelf.` chains only (not into macro
variables such as `x` in `self.items.all(x, x.name != "")`), no type checking beyond field
existence, and no CEL cost estimation.
"""

from __future__ import annotations

import re
from typing import Any

from celpy.celparser import CELParseError
from crd_validation import _program

from .validation import cause

_CHAIN = re.compile(r"\b(?:oldSelf|self)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")


def crd_causes(crd: dict[str, Any]) -> list[dict[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    if crd["metadata"]["name"] != f"{names.get('plural')}.{spec.get('group')}":
        causes.append(
            cause(
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+spec.group',
            )
        )
    for i, version in enumerate(spec.get("versions") or []):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema:
            causes += _rule_causes(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
    return causes


def _rule_causes(schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    causes = []
    for j, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        problem = compile_problem(rule.get("rule", ""), schema)
        if problem:
            causes.append(
                cause(
                    "FieldValueInvalid",
                    f"{path}.x-kubernetes-validations[{j}].rule",
                    f"Invalid value: {rule.get('rule', '')!r}: compilation failed: {problem}",
                )
            )
    for key, child in (schema.get("properties") or {}).items():
        causes += _rule_causes(child, f"{path}.properties[{key}]")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            causes += _rule_causes(schema[key], f"{path}.{key}")
    return causes


def compile_problem(rule: str, schema: dict[str, Any]) -> str | None:
    """Why `rule` would not compile at `schema`, in the server's words; None when it compiles."""
    try:
        _program(rule)
    except CELParseError as exc:
        return f"ERROR: <input>: Syntax error: {str(exc).splitlines()[0]}"
    for match in _CHAIN.finditer(rule):
        names = match[1].split(".")[1:]
        if match[2]:  # the last name is a method call: self.x.size()
            names = names[:-1]
        missing = _undefined(names, schema)
        if missing:
            return f"ERROR: <input>:1:{match.start() + 1}: undefined field '{missing}'"
    return None


def _undefined(names: list[str], schema: dict[str, Any]) -> str | None:
    for name in names:
        if schema.get("x-kubernetes-preserve-unknown-fields") or "properties" not in schema:
            return None  # free-form, a map, a list or a scalar: nothing more to check by name
        props = schema["properties"]
        if name not in props and _unescape(name) not in props:
            return name
        schema = props.get(name) or props[_unescape(name)]
    return None


def _unescape(name: str) -> str:
    if name.startswith("__") and name.endswith("__") and name.count("__") == 2:
        return name[2:-2]
    for word, char in (("__dash__", "-"), ("__dot__", "."), ("__slash__", "/"), ("__underscores__", "__")):
        name = name.replace(word, char)
    return name
