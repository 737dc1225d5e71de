"""adacot.api.quantity: Kubernetes quantities as numbers (binary and decimal suffixes)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from adacot.api.quantity import QUANTITY, parse_quantity, quantity_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("2", 2),
        ("1Ki", 1024),
        ("64Mi", 64 << 20),
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("2Ti", 2 << 40),
        ("1Pi", 1 << 50),
        ("1Ei", 1 << 60),
        ("1k", 1000),
        ("1.5k", 1500),
        ("512M", 512_000_000),
        ("2G", 2_000_000_000),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("500m", Decimal("0.5")),
        ("1500m", Decimal("1.5")),
    ],
)
def test_values(text: str, value: Decimal | int) -> None:
    assert re.match(QUANTITY, text)
    assert parse_quantity(text) == value


def test_bytes_round_up() -> None:
    assert quantity_bytes("1Gi") == 1 << 30
    assert quantity_bytes("1500m") == 2
    assert quantity_bytes("0.5Ki") == 512
    assert quantity_bytes("1.0000001k") == 1001


@pytest.mark.parametrize("text", ["", "Gi", "1gi", "1 Gi", "-1Gi", "1e3", "1KiB", "1.Gi", "1Xi"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)
