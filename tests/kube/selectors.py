"""labelSelector and fieldSelector query parameters, parsed and matched as the API server does.

Called by store.py (list, watch). Labels: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`,
`!k`. Fields: `path=v`, `path==v`, `path!=v` over any dotted path of the object (the real server
allows only a few per kind: metadata.name and metadata.namespace everywhere, plus kind-specific ones
such as status.phase; the emulator does not reject the others). A malformed selector is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]
_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|!=|=)\s*([\w./-]*))?\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return [p for p in parts if p.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    if m := _SET.match(term):
        key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = _EQ.match(term)
    if not m or (m[1] and m[3]):
        raise bad_request(
            f"unable to parse requirement: found '{term.strip()}', expected: in, notin, =, ==, !="
        )
    negate, key, op, value = m[1], m[2], m[3], m[4]
    if op is None:
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    if op == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: labels.get(key) == value


def label_matcher(selector: str | None) -> Matcher:
    terms = [_label_term(t) for t in _split(selector or "")]
    return lambda obj: all(t((obj.get("metadata") or {}).get("labels") or {}) for t in terms)


def _lookup(obj: Any, path: str) -> str:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    if obj is None:
        return ""
    return str(obj).lower() if isinstance(obj, bool) else str(obj)


def field_matcher(selector: str | None) -> Matcher:
    terms = []
    for term in _split(selector or ""):
        m = re.match(r"^\s*([\w.-]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term.strip()}'")
        path, op, value = m[1], m[2], m[3]
        terms.append((path, op == "!=", value))
    return lambda obj: all((_lookup(obj, p) == v) != neg for p, neg, v in terms)
