"""Wire formats: timestamps, decimal strings, deterministic starting prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.alpaca.paper.wire import fmt_money
from brokers.paper.model import fmt_decimal, initial_price, parse_time, rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T15:41:00.123456Z", "2026-11-21T15:41:00.123456Z"),
        ("2026-11-21T15:41:00.123456789Z", "2026-11-21T15:41:00.123456Z"),
        ("2026-11-21T16:41:00+01:00", "2026-11-21T15:41:00.000000Z"),
        ("2026-11-21T16:41:00 01:00", "2026-11-21T15:41:00.000000Z"),
        ("2026-11-21", "2026-11-21T00:00:00.000000Z"),
    ],
)
def test_parse_time_reads_what_clients_send(text: str, expected: str) -> None:
    assert rfc3339(parse_time(text)) == expected


@given(st.integers(0, 4_102_444_800_000_000))
def test_timestamps_round_trip(us: int) -> None:
    assert parse_time(rfc3339(us)) == us


@pytest.mark.parametrize(
    ("value", "decimal_text", "money_text"),
    [
        ("10", "10", "10.00"),
        ("1.50", "1.5", "1.50"),
        ("0", "0", "0.00"),
        ("1E+3", "1000", "1000.00"),
        ("0.000000001", "0.000000001", "0.000000001"),
        ("105.8988475", "105.8988475", "105.8988475"),
    ],
)
def test_decimal_strings(value: str, decimal_text: str, money_text: str) -> None:
    assert fmt_decimal(Decimal(value)) == decimal_text
    assert fmt_money(Decimal(value)) == money_text


@given(st.text(min_size=1, max_size=8))
def test_starting_prices_are_deterministic_cents_between_20_and_500(symbol: str) -> None:
    price = initial_price(symbol)
    assert price == initial_price(symbol)
    assert Decimal(20) <= price <= Decimal(500)
    assert price == price.quantize(Decimal("0.01"))
