"""Task arguments are parsed strictly; what cannot be an order is refused clearly."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import BaseBackend
from celery.utils.serialization import get_pickleable_exception

from worker.args import InvalidTaskArguments, PlaceOrderArgs, parse_args

BASE = {"account": "a", "symbol": "aapl", "side": "buy", "quantity": "1"}


def test_a_good_call_is_parsed_with_decimals_and_upper_case_symbol() -> None:
    args = parse_args(PlaceOrderArgs, "t", (), {**BASE, "quantity": "0.000000001"})
    assert (args.symbol, args.quantity) == ("AAPL", Decimal("0.000000001"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": "1E+25"}, "out of range"),
        ({"quantity": 10**40}, "out of range"),  # a whole number too
        ({"quantity": "0.0000000000000000001"}, "out of range"),
        ({"quantity": "NaN"}, "not a finite decimal"),
        ({"quantity": True}, "not bool"),
        ({"limit_price": "10"}, "limit_price is not allowed for a market order"),
        ({"order_type": "trailing_stop"}, "cannot be placed"),
        ({"time_in_force": "opg"}, "cannot be placed"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"symbol": ""}, "symbol"),
        ({"intent": "EXIT"}, "an EXIT order needs trade_id: the trade it closes"),
        ({"decision_id": "d\x00"}, "decision_id: must not contain control characters"),
        ({"trade_id": "t\n1"}, "trade_id: must not contain control characters"),
        ({"account": "a\x7f"}, "account: must not contain control characters"),
    ],
)
def test_bad_calls_say_what_is_wrong(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTaskArguments, match=reason):
        parse_args(PlaceOrderArgs, "t", (), {**BASE, **change})


def test_a_refusal_reaches_a_celery_caller_as_itself_with_the_problem_as_its_message() -> None:
    """Celery's worker pickles a failure first (a class that fails comes back as its nearest
    base, ValueError), then the JSON result carries its type name and args."""
    error = InvalidTaskArguments("ordersync.place_order", "quantity: must be positive, got 0")
    assert get_pickleable_exception(error) is error
    unpickled = pickle.loads(pickle.dumps(error))
    assert (type(unpickled), unpickled.task_name, unpickled.problem) == (
        InvalidTaskArguments, "ordersync.place_order", "quantity: must be positive, got 0",
    )  # fmt: skip
    assert str(error) == "ordersync.place_order: quantity: must be positive, got 0"

    backend = BaseBackend(Celery("caller", set_as_current=False), serializer="json")
    stored = backend.prepare_exception(error)
    here = backend.exception_to_python(stored)  # a caller that has ordersync's classes
    elsewhere = backend.exception_to_python({**stored, "exc_module": "not.ordersync"})
    for raised in (here, elsewhere):
        assert type(raised).__name__ == "InvalidTaskArguments"
        assert str(raised) == "quantity: must be positive, got 0"
    assert isinstance(here, InvalidTaskArguments)
