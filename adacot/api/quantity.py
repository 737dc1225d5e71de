"""Kubernetes resource quantities ("64Mi", "1.5Gi", "500m", "2") as plain numbers.

The spec writes memory the way Kubernetes does; the code that enforces a limit (the sandbox's
address-space rlimit) needs bytes. Only the forms the API's QUANTITY pattern admits are parsed: a
decimal number with an optional binary (Ki..Ei) or decimal (m, k..E) suffix; no exponents, no sign.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

# Kubernetes resource quantities as people write them ("500m", "16Gi", "2").
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SPLIT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


def parse_quantity(text: str) -> Decimal:
    """The quantity's value as an exact decimal: "1Gi" → 1073741824, "500m" → 0.5, "1.5k" → 1500."""
    found = _SPLIT.match(text)
    if not found or (found[2] not in _BINARY and found[2] not in _DECIMAL):
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 500m, 8 or 64Gi")
    number, suffix = Decimal(found[1]), found[2]
    if suffix in _BINARY:
        return number * Decimal(1024 ** _BINARY[suffix])
    return number.scaleb(3 * _DECIMAL[suffix])


def quantity_bytes(text: str) -> int:
    """A memory quantity in whole bytes, rounded up as Kubernetes does ("1.5Ki" → 1536, "1500m" → 2)."""
    return math.ceil(parse_quantity(text))
