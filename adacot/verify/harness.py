"""The value encoding shared by the parent and the in-sandbox harness, and the harness script's
first half.

Two roles, standard library only:
  * imported by adacot.verify.code, it provides `encode` (inputs going in), `decode` (return values
    coming out) and the `Digest`/`Opaque` values that `decode` yields;
  * as text, it opens the sandbox's script: adacot.verify.code runs this file followed by
    adacot.verify.harness_main (the test runner, which ends by calling its `main`) as one script,
    `harness_main.py` in the run's workdir. Inside the sandbox there is no adacot and no script
    directory on sys.path, so the script must be self-contained: this file imports nothing but the
    standard library, and its `from __future__ import annotations` covers both halves.

Why two files: the encoding is the part the parent shares; the runner is the part only the sandbox
runs. Concatenating in that fixed order keeps one self-contained script (no import between the halves,
no sys.path entry a program could use) and each file readable on its own.

Encoding (`encode`/`decode`): plain JSON for None, bool, int (big ones as hex), float (NaN and
Infinity allowed), str; single-key objects tag containers and the rest: {"#l": [...]} list,
{"#t": [...]} tuple, {"#s": [...]} set, {"#f": [...]} frozenset, {"#d": [[k, v], ...]} dict,
{"#c": [re, im]} complex, {"#b": "hex"} bytes, {"#i": "hex"} int, {"#r": [type, repr]} anything else
(compared by type name and repr). Subclasses are reduced to their builtin base (a namedtuple is a
tuple), so a user type cannot smuggle its own `__eq__` to the parent. Never pickle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

_REPR_CAP = 2000
_BIG_INT = 10**1000
_SCALARS = (type(None), bool, str, float)
_LEAVES = frozenset({type(None), bool, str, float, int})
"""Exact types a JSON scalar decodes to; a list holding only these is its own encoding (`_flat`)."""
_CONTAINERS = (list, tuple, set, frozenset, dict)
DIGEST_OVER = 250_000
"""A return value with more elements than this (all levels counted) travels as a Digest."""
_DIGEST_CHUNK = 4096


def encode(value: Any) -> Any:
    """Turn a value into the tagged JSON form; raises TypeError/RecursionError on what cannot be."""
    # Exact types first: the parent encodes every test input of every sample, and the checks in
    # `_encode_other` (isinstance through each kind, subclasses included) cost several times more.
    kind = type(value)
    if kind is int:
        return value if -_BIG_INT < value < _BIG_INT else {"#i": hex(value)}
    if kind in _SCALARS:
        return value
    if kind is list:
        return {"#l": value if _flat(value) else [encode(item) for item in value]}
    if kind is tuple:
        return {"#t": list(value) if _flat(value) else [encode(item) for item in value]}
    return _encode_other(value)


def _flat(items: Any) -> bool:
    """Whether every item is an exact scalar that encodes as itself (ints within the JSON bound).

    One C-level pass (`set(map(type, ...))`) instead of a call of `encode` per item: results of
    tens of thousands of numbers (MBPP+'s Mbpp/630) cost several times the program's own run else."""
    kinds = set(map(type, items))
    if not kinds <= _LEAVES:
        return False
    if int not in kinds:
        return True
    if len(kinds) == 1:
        return bool(min(items) > -_BIG_INT and max(items) < _BIG_INT)
    return all(-_BIG_INT < item < _BIG_INT for item in items if type(item) is int)


def _encode_other(value: Any) -> Any:
    """`encode` for every type but the exact ones it handles itself: subclasses reduced to their base."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        return number if -_BIG_INT < number < _BIG_INT else {"#i": hex(number)}
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return _encode_container(value)


def _encode_container(value: Any) -> Any:
    kinds: tuple[tuple[Any, str], ...] = ((list, "#l"), (tuple, "#t"), (set, "#s"), (frozenset, "#f"))
    for kind, tag in kinds:
        if isinstance(value, kind):
            return {tag: [encode(item) for item in kind.__iter__(value)]}
    if isinstance(value, dict):
        return {"#d": [[encode(k), encode(v)] for k, v in dict.items(value)]}
    if isinstance(value, complex):
        return {"#c": [complex(value).real, complex(value).imag]}
    if isinstance(value, (bytes, bytearray)):
        return {"#b": bytes(value).hex()}
    return {"#r": [type(value).__name__, repr(value)[:_REPR_CAP]]}


def encode_result(value: Any) -> Any:
    """`encode`, except that a huge container becomes {"#h": [type, len, sha256]} (see Digest)."""
    if isinstance(value, _CONTAINERS) and _exceeds(value, DIGEST_OVER):
        digest = Digest.of(value)
        return {"#h": [digest.type_name, digest.size, digest.sha256]}
    return encode(value)


def _exceeds(value: Any, budget: int) -> bool:
    """Whether `value` holds more than `budget` elements; stops counting as soon as it does."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += len(item)
        if seen > budget:
            return True
        children = item.values() if isinstance(item, dict) else item
        if not set(map(type, children)) <= _LEAVES:  # only containers are walked into
            stack.extend(child for child in children if isinstance(child, _CONTAINERS))
    return False


class Digest:
    """A huge value known by its builtin type, length and the sha256 of its repr, taken in chunks.

    Values of millions of elements (MBPP+'s Mbpp/255 returns up to 1.66 million 77-tuples) would
    exceed the result channel's cap as tagged JSON; both sides reduce them to this instead, and two
    Digests are equal only when the reprs are identical. That is exact equality without EvalPlus's
    float tolerance, and order-sensitive for sets and dicts - a documented limit for huge values only.
    """

    __slots__ = ("sha256", "size", "type_name")

    def __init__(self, type_name: str, size: int, sha256: str) -> None:
        self.type_name, self.size, self.sha256 = type_name, size, sha256

    @classmethod
    def of(cls, value: Any) -> Digest:
        import hashlib

        kind = next(k for k in (list, tuple, set, frozenset, dict) if isinstance(value, k))
        items = list(dict.items(value)) if kind is dict else list(kind.__iter__(value))
        hasher = hashlib.sha256()
        for start in range(0, len(items), _DIGEST_CHUNK):
            hasher.update(repr(items[start : start + _DIGEST_CHUNK]).encode("utf-8", "surrogatepass"))
        return cls(kind.__name__, len(items), hasher.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and (self.type_name, self.size, self.sha256) == (
            other.type_name,
            other.size,
            other.sha256,
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.size, self.sha256))

    def __repr__(self) -> str:
        return f"<{self.type_name} of {self.size} items, sha256 {self.sha256[:12]}>"


class Opaque:
    """A value the encoding has no tag for, known by its type name and repr."""

    __slots__ = ("text", "type_name")

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.type_name, self.text) == (other.type_name, other.text)

    def __hash__(self) -> int:
        return hash((self.type_name, self.text))

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>"


def decode(data: Any) -> Any:
    """Inverse of `encode`; raises ValueError on anything that is not a well-formed encoding."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if not (isinstance(data, dict) and len(data) == 1):
        raise ValueError(f"not an encoded value: {str(data)[:80]}")
    ((tag, body),) = data.items()
    try:
        return _DECODERS[tag](body)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"bad encoded value under {tag!r}: {exc}") from exc


def _plain(body: Any) -> bool:
    """Whether a decoded JSON array holds scalars only: then it is its own decoding."""
    return type(body) is list and set(map(type, body)) <= _LEAVES


_DECODERS: dict[str, Any] = {
    "#l": lambda body: body if _plain(body) else [decode(item) for item in body],
    "#t": lambda body: tuple(body) if _plain(body) else tuple(decode(item) for item in body),
    "#s": lambda body: {decode(item) for item in body},
    "#f": lambda body: frozenset(decode(item) for item in body),
    "#d": lambda body: {decode(k): decode(v) for k, v in body},
    "#c": lambda body: complex(float(body[0]), float(body[1])),
    "#b": lambda body: bytes.fromhex(body),
    "#i": lambda body: int(body, 16),
    "#r": lambda body: Opaque(str(body[0]), str(body[1])),
    "#h": lambda body: Digest(str(body[0]), int(body[1]), str(body[2])),
}
