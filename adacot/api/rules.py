"""CEL validation rules (`x-kubernetes-validations`) for the generated CRDs, and their pydantic twins.

Why one module: each rule is written once here and lands both in the CRD (so `kubectl apply` rejects a
bad resource with the message below) and, through `check_one_of` / `adacot.api.check_update`, in the
Python models that `adacot run` validates with.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

Rule = dict[str, str]


def cel(rule: str, message: str) -> Rule:
    """One `x-kubernetes-validations` entry; the message is what `kubectl apply` shows."""
    return {"rule": rule, "message": message}


def validations(*rules: Rule) -> JsonDict:
    """The json_schema_extra block carrying CEL rules for a model or a field."""
    return {"x-kubernetes-validations": [dict(r) for r in rules]}


IMMUTABLE = "self == oldSelf"


def is_value(path: str, value: str) -> str:
    """CEL that is true when the (possibly absent) field at dotted `path` equals the string `value`;
    has() guards matter because the API server applies defaults only inside objects that exist."""
    parts = path.split(".")
    guards = [f"has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts))]
    return "(" + " && ".join([*guards, f"self.{path} == '{value}'"]) + ")"


def immutable(what: str) -> JsonDict:
    """A transition rule: the field may be set on create but never changed afterwards.

    `adacot.api.check_update` finds these rules by their text and applies them in Python.
    """
    return validations(cel(IMMUTABLE, f"{what} is immutable"))


def one_of_rule(fields: tuple[str, ...], where: str) -> Rule:
    """CEL for "exactly one of these optional fields is set"."""
    count = " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields)
    return cel(f"{count} == 1", f"{where}: set exactly one of {', '.join(fields)}")


def check_one_of(model: BaseModel, fields: tuple[str, ...], where: str) -> None:
    """The pydantic twin of `one_of_rule` (field names are the camelCase wire names)."""
    wire = {to_camel(name): name for name in type(model).model_fields}
    chosen = [f for f in fields if getattr(model, wire[f]) is not None]
    if len(chosen) != 1:
        got = ", ".join(chosen) if chosen else "none"
        raise ValueError(f"{where}: set exactly one of {', '.join(fields)} (got {got})")
