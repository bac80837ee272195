"""Task arguments are parsed strictly; what cannot be an order is refused clearly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.args import InvalidTaskArguments, PlaceOrderArgs, parse_args

BASE = {"account": "a", "symbol": "aapl", "side": "buy", "quantity": "1"}


def test_a_good_call_is_parsed_with_decimals_and_upper_case_symbol() -> None:
    args = parse_args(PlaceOrderArgs, "t", (), {**BASE, "quantity": "0.000000001"})
    assert (args.symbol, args.quantity) == ("AAPL", Decimal("0.000000001"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": "1E+25"}, "out of range"),
        ({"quantity": "0.0000000000000000001"}, "out of range"),
        ({"quantity": "NaN"}, "not a finite decimal"),
        ({"quantity": True}, "not bool"),
        ({"limit_price": "10"}, "limit_price is not allowed for a market order"),
        ({"order_type": "trailing_stop"}, "cannot be placed"),
        ({"time_in_force": "opg"}, "cannot be placed"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"symbol": ""}, "symbol"),
        ({"intent": "EXIT"}, "an EXIT order needs trade_id: the trade it closes"),
    ],
)
def test_bad_calls_say_what_is_wrong(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTaskArguments, match=reason):
        parse_args(PlaceOrderArgs, "t", (), {**BASE, **change})
