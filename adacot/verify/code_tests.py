"""Test specifications for the code Result-Verifier, and how outputs are compared.

Used by adacot.verify.code (and by the CLI through it). Two forms, both plain JSON in a row's `tests`
field:

  function-call  {"entry_point": "f", "inputs": [[arg1, arg2], ...], "outputs": [expected, ...],
                  "atol": 0}
                 `outputs` may be left out when `canonical_solution` (program text) is given: the
                 expected outputs then come from running the canonical solution in the sandbox on the
                 same inputs, as EvalPlus does for MBPP+/HumanEval+.
  stdin/stdout   {"stdio": [{"input": "...", "output": "..."}, ...]}

Comparison of return values (`outputs_match`) follows EvalPlus's evaluator (evalplus/eval/__init__.py,
`unsafe_execute`): exact equality `out == exp` first; failing that, when atol > 0 or the expected value
is a float or a non-empty list/tuple of floats (then atol = 1e-6), the types must match, lists/tuples
must have equal length and every element must satisfy |out - exp| <= atol + 1e-7 * |exp| (the rule of
`numpy.allclose(out, exp, rtol=1e-7, atol=atol)`; NaN never matches). EvalPlus's set-equality and
not-None oracles are reproduced (field `oracle`, set by `mbppplus_tests`); its four formula oracles
(Mbpp/164, 295, 558, 581) are not: they only accept alternative answers to ambiguous tasks.
Expected outputs written in the spec are JSON, which has no tuples: a returned tuple is compared as a
list there. Expected outputs from a canonical solution keep their exact types.

Stdin/stdout outputs are compared token-wise (`stdout_matches`): both texts are split on any run of
whitespace, so trailing spaces, trailing newlines and \\r\\n versus \\n do not matter; the tokens must
be equal and in order (line breaks inside the output are not significant, as with most judges'
default checker).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class CallTests(BaseModel):
    """Function-call tests: call `entry_point(*args)` for each `inputs` row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry_point: str = Field(min_length=1, description="Name of the function to call.")
    inputs: list[list[Any]] = Field(min_length=1, description="One argument list per test.")
    outputs: list[Any] | None = Field(default=None, description="Expected return values, one per test.")
    canonical_solution: str | None = Field(
        default=None,
        description="Reference program whose return "
        "values are the expected outputs when `outputs` is absent.",
    )
    atol: float = Field(default=0.0, ge=0.0, description="Absolute float tolerance (EvalPlus rule).")
    oracle: Literal["exact", "set", "not_none"] = Field(
        default="exact",
        description="exact: EvalPlus comparison; set: set(out) == set(exp) (order-free "
        "answers); not_none: only whether the result is None matters (regex match objects).",
    )

    @model_validator(mode="after")
    def _expected_known(self) -> CallTests:
        if self.outputs is None and not self.canonical_solution:
            raise ValueError("give `outputs` or a `canonical_solution` to compute them from")
        if self.outputs is not None and len(self.outputs) != len(self.inputs):
            raise ValueError(f"`outputs` has {len(self.outputs)} entries but `inputs` has {len(self.inputs)}")
        return self


class StdioCase(BaseModel):
    """One stdin/stdout execution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(description="Text fed to stdin.")
    output: str = Field(description="Expected stdout (compared token-wise).")


class StdioTests(BaseModel):
    """Competitive-programming tests: run the whole program once per case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stdio: list[StdioCase] = Field(min_length=1)


CodeTests = CallTests | StdioTests


class BadTests(ValueError):
    """A tests spec that cannot be used; the message says which field is wrong."""


def parse_tests(raw: Any) -> CodeTests:
    """Validate a raw `tests` value (dict or model) into CallTests or StdioTests."""
    if isinstance(raw, (CallTests, StdioTests)):
        return raw
    if not isinstance(raw, dict):
        raise BadTests(f"tests must be an object, got {type(raw).__name__}")
    model: type[CallTests] | type[StdioTests] = StdioTests if "stdio" in raw else CallTests
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tests'}: {e['msg']}" for e in exc.errors())
        raise BadTests(f"invalid {model.__name__}: {problems}") from None


def mbppplus_tests(row: dict[str, Any], plus: bool = True) -> CallTests:
    """Function-call tests of one MBPP+ row (base inputs, then plus inputs when `plus`); expected
    outputs are left to the canonical solution, as EvalPlus computes them."""
    missing = [key for key in ("entry_point", "canonical_solution", "base_input") if key not in row]
    if missing:
        raise BadTests(f"MBPP+ row {row.get('task_id', '?')} lacks {', '.join(missing)}")
    inputs = list(row["base_input"]) + (list(row.get("plus_input") or []) if plus else [])
    inputs = _mbpp_input_types(str(row.get("task_id", "")), inputs)
    entry_point = row["entry_point"]
    oracle: Literal["exact", "set", "not_none"] = (
        "set" if entry_point in _MBPP_SET_EQ else "not_none" if entry_point in _MBPP_NOT_NONE else "exact"
    )
    return CallTests(
        entry_point=entry_point,
        inputs=inputs,
        canonical_solution=row["canonical_solution"],
        atol=float(row.get("atol") or 0),
        oracle=oracle,
    )


# EvalPlus's per-task oracles (evalplus/eval/_special_oracle.py, v0.3.1), by entry point.
_MBPP_SET_EQ = {
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
}
_MBPP_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# MBPP+ ships inputs as JSON, which has no tuples, sets or complex numbers; EvalPlus restores them per
# task (evalplus/data/mbpp.py `mbpp_deserialize_inputs`, v0.3.1). Same task lists, same conversions.
_T: Any = tuple
_MBPP_INPUT_FIXES: list[tuple[set[int], Any]] = [
    (
        {
            2,
            116,
            132,
            143,
            222,
            261,
            273,
            394,
            399,
            421,
            424,
            429,
            470,
            560,
            579,
            596,
            616,
            630,
            726,
            740,
            744,
            809,
        },
        lambda a: [_T(x) for x in a],
    ),
    (
        {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780},
        lambda a: [[_T(x) for x in group] for group in a],
    ),
    ({75, 413, 444, 753}, lambda a: [[_T(x) for x in a[0]], a[1]]),
    ({106, 750}, lambda a: [a[0], _T(a[1])]),
    ({115}, lambda a: [[set(x) if isinstance(x, list) and x else {} for x in a[0]]]),
    ({124}, lambda a: [float(a[0]), complex(a[1])]),
    ({250, 405, 446, 617, 720, 763, 808}, lambda a: [_T(a[0]), a[1]]),
    ({259, 401, 445}, lambda a: [_T(_T(x) for x in group) for group in a]),
    ({278}, lambda a: [_T(_T(x) if isinstance(x, list) else x for x in a[0])]),
    ({307}, lambda a: [_T(a[0]), a[1], a[2]]),
    ({722}, lambda a: [{k: _T(v) for k, v in a[0].items()}, *a[1:]]),
    ({252}, lambda a: [complex(a[0])]),
    ({580, 615, 791}, lambda a: list(_tuples(a))),
]


def _mbpp_input_types(task_id: str, inputs: list[list[Any]]) -> list[list[Any]]:
    number = int(task_id.rsplit("/", 1)[-1]) if task_id.rsplit("/", 1)[-1].isdigit() else -1
    for tasks, fix in _MBPP_INPUT_FIXES:
        if number in tasks:
            return [list(fix(args)) for args in inputs]
    return inputs


def outputs_match(expected: Any, actual: Any, atol: float, oracle: str = "exact") -> bool:
    """EvalPlus's comparison, see the module docstring."""
    try:
        if oracle == "set":
            return set(actual) == set(expected)
        if oracle == "not_none":
            wanted = expected if isinstance(expected, bool) else expected is not None
            return actual == wanted if isinstance(actual, bool) else (actual is not None) == wanted
        if bool(actual == expected):
            return True
    except Exception:
        return False
    if atol == 0 and _is_floats(expected):
        atol = 1e-6
    if atol == 0 or type(actual) is not type(expected):
        return False
    return _close(actual, expected, atol)


def _is_floats(value: Any) -> bool:
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, float) for v in value)


def _close(actual: Any, expected: Any, atol: float) -> bool:
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(_close(a, e, atol) for a, e in zip(actual, expected, strict=True))
        )
    numbers = (int, float)
    if not (isinstance(actual, numbers) and isinstance(expected, numbers)):
        return bool(actual == expected)
    if math.isnan(actual) or math.isnan(expected):
        return False
    if math.isinf(actual) or math.isinf(expected):
        return actual == expected
    return abs(actual - expected) <= atol + 1e-7 * abs(expected)


_JSON_LEAVES = frozenset({type(None), bool, int, float, str})


def as_json_shape(value: Any) -> Any:
    """Tuples as lists, recursively: the shape a value has after a JSON round trip."""
    if isinstance(value, (list, tuple)):
        if set(map(type, value)) <= _JSON_LEAVES:  # one C-level pass for flat lists of numbers
            return list(value)
        return [as_json_shape(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json_shape(item) for key, item in value.items()}
    return value


def stdout_matches(expected: str, actual: str) -> bool:
    """Token-wise comparison, see the module docstring."""
    return expected.split() == actual.split()
