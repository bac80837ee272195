"""Task arguments are parsed strictly; what cannot be an order is refused clearly."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import BaseBackend
from celery.utils.serialization import get_pickleable_exception

from worker.args import InvalidTaskArguments, PlaceOrderArgs, ReplaceOrderArgs, parse_args

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


def test_a_notional_order_names_an_amount_of_money_instead_of_a_quantity() -> None:
    notional = {k: v for k, v in BASE.items() if k != "quantity"} | {"notional": "500.25"}
    args = parse_args(PlaceOrderArgs, "t", (), notional)
    assert (args.quantity, args.notional) == (None, Decimal("500.25"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"notional": "500"}, "^t: give quantity or notional \\(an amount of money\\), not both$"),
        ({"quantity": None}, "^t: give quantity or notional \\(an amount of money\\)$"),
        ({"quantity": None, "notional": "0"}, "notional: must be positive, got 0"),
        ({"quantity": None, "notional": 500.0}, "notional: send decimals as strings"),
        ({"quantity": None, "notional": "1E+25"}, "notional: '1E\\+25' is out of range"),
        ({"quantity": None, "notional": "500", "intent": "EXIT", "trade_id": "t-1"},
         "an EXIT order gives quantity, not notional"),
    ],
)  # fmt: skip
def test_quantity_or_notional_exactly_one(change: dict[str, Any], reason: str) -> None:
    kwargs = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(InvalidTaskArguments, match=reason):
        parse_args(PlaceOrderArgs, "t", (), kwargs)


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


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"quantity": "1"}, "give order_id or client_order_id"),
        ({"order_id": "o-1"}, "give at least one of quantity, limit_price, stop_price"),
        ({"order_id": "o-1", "limit_price": 10.5}, "send decimals as strings"),
        ({"order_id": "o-1", "quantity": "0"}, "must be positive"),
        ({"order_id": "o-1", "time_in_force": "cls"}, "time_in_force cls cannot be placed"),
        ({"order_id": "o-1", "quantity": "1", "symbol": "MSFT"}, "unknown argument 'symbol'"),
        ({"order_id": "o-1", "quantity": "1", "new_client_order_id": "a b"}, "new_client_order_id"),
    ],
)
def test_bad_replace_calls_say_what_is_wrong(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTaskArguments, match=reason):
        parse_args(ReplaceOrderArgs, "ordersync.replace_order", (), {"account": "a", **kwargs})


def test_a_replace_call_takes_the_order_by_either_id_and_only_what_changes() -> None:
    call = {"account": "a", "client_order_id": "c-1", "limit_price": "10.25"}
    args = parse_args(ReplaceOrderArgs, "ordersync.replace_order", (), call)
    assert (args.order_id, args.client_order_id) == (None, "c-1")
    assert args.limit_price == Decimal("10.25")
    assert (args.quantity, args.stop_price, args.time_in_force) == (None, None, None)


TAKE = {"limit_price": "110"}
STOP = {"stop_price": "90"}
LIMIT_SELL = {"side": "sell", "order_type": "limit", "limit_price": "110"}


@pytest.mark.parametrize(
    "change",
    [
        {"order_class": "bracket", "take_profit": TAKE, "stop_loss": STOP},
        {"order_class": "bracket", "take_profit": TAKE,
         "stop_loss": {"stop_price": "90", "limit_price": "89.5"}, "time_in_force": "gtc"},
        {"order_class": "bracket", "side": "sell", "take_profit": {"limit_price": "90"},
         "stop_loss": {"stop_price": "110"}},
        {"order_class": "oto", "stop_loss": STOP, "order_type": "limit", "limit_price": "100"},
        {"order_class": "oco", **LIMIT_SELL, "take_profit": TAKE, "stop_loss": STOP},
    ],
)  # fmt: skip
def test_orders_with_exit_legs_are_taken(change: dict[str, Any]) -> None:
    args = parse_args(PlaceOrderArgs, "t", (), {**BASE, **change})
    assert args.order_class.value == change["order_class"]
    if "take_profit" in change:
        assert args.take_profit is not None
        assert args.take_profit.limit_price == Decimal(change["take_profit"]["limit_price"])
    if "stop_loss" in change:
        assert args.stop_loss is not None
        assert args.stop_loss.stop_price == Decimal(change["stop_loss"]["stop_price"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"take_profit": TAKE}, "take_profit need order_class bracket, oto or oco"),
        ({"order_class": "bracket", "take_profit": TAKE}, "needs both take_profit and stop_loss"),
        ({"order_class": "oto"}, "exactly one of take_profit and stop_loss"),
        ({"order_class": "oto", "take_profit": TAKE, "stop_loss": STOP}, "exactly one"),
        ({"order_class": "bracket", "take_profit": TAKE, "stop_loss": STOP,
          "time_in_force": "ioc"}, "must be day or gtc"),
        ({"order_class": "bracket", "take_profit": TAKE, "stop_loss": STOP,
          "order_type": "stop", "stop_price": "95"}, "entry must be market or limit"),
        ({"order_class": "bracket", "take_profit": {"limit_price": "80"}, "stop_loss": STOP},
         "take_profit.limit_price must be above stop_loss.stop_price"),
        ({"order_class": "bracket", "side": "sell", "take_profit": TAKE, "stop_loss": STOP},
         "must be below"),
        ({"order_class": "oco", "take_profit": TAKE, "stop_loss": STOP}, "is a limit order"),
        ({"order_class": "oco", **LIMIT_SELL, "limit_price": "111", "take_profit": TAKE,
          "stop_loss": STOP}, "must equal take_profit.limit_price"),
        ({"order_class": "bracket", "take_profit": {"limit_price": 110.0}, "stop_loss": STOP},
         "send decimals as strings"),
        ({"order_class": "bracket", "take_profit": {"price": "1"}, "stop_loss": STOP},
         "take_profit"),
        ({"order_class": "mleg"}, "order_class"),
    ],
)  # fmt: skip
def test_bad_exit_legs_say_what_is_wrong(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTaskArguments, match=reason):
        parse_args(PlaceOrderArgs, "t", (), {**BASE, **change})
