"""What ordersync asks Tradier for: the terms it refuses before anything is written, and the
registry building the adapter from the account's environment slots."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers import registry
from brokers.tradier import paging
from brokers.tradier.adapter import TradierBroker
from brokers.tradier.build import Unplaceable, place_form
from brokers.tradier.tags import tag_for
from core.enums import BrokerKind, Intent, OrderClass, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest

SIMPLE = OrderClass.SIMPLE


@pytest.mark.parametrize(
    ("symbol", "order_type", "tif", "order_class", "quantity", "notional", "said", "intent"),
    [
        ("AAPL", OrderType.LIMIT, TimeInForce.GTC, SIMPLE, "10", None, None, None),
        ("AAPL", OrderType.STOP_LIMIT, TimeInForce.DAY, SIMPLE, "10", None, None, None),
        ("AAPL", OrderType.MARKET, TimeInForce.IOC, SIMPLE, "10", None, "ioc does not exist", None),
        ("AAPL", OrderType.MARKET, TimeInForce.DAY, SIMPLE, "0.5", None, "whole shares", None),
        ("AAPL", OrderType.MARKET, TimeInForce.DAY, SIMPLE, None, "100", "not an amount", None),
        ("AAPL", OrderType.LIMIT, TimeInForce.DAY, OrderClass.BRACKET, "1", None,
         "order class bracket", None),
        ("AAPL", OrderType.TRAILING_STOP, TimeInForce.DAY, SIMPLE, "1", None,
         "trailing_stop is not placed", None),
        ("AAPL240119C00150000", OrderType.LIMIT, TimeInForce.DAY, SIMPLE, "1", None,
         "needs intent ENTRY or EXIT", None),
        ("AAPL240119C00150000", OrderType.LIMIT, TimeInForce.DAY, SIMPLE, "1", None, None,
         Intent.ENTRY),
        ("AAPL240119C00150000", OrderType.MARKET, TimeInForce.GTC, SIMPLE, "3", None, None,
         Intent.EXIT),
        ("AAPL240119C00150000", OrderType.MARKET, TimeInForce.DAY, SIMPLE, "1.5", None,
         "whole contracts", Intent.ENTRY),
        ("AAPL241319C00150000", OrderType.MARKET, TimeInForce.DAY, SIMPLE, "1", None,
         "expiry is not a date", Intent.ENTRY),
    ],
)  # fmt: skip
def test_terms_tradier_cannot_take_are_refused_through_the_registry(
    symbol: str, order_type: OrderType, tif: TimeInForce, order_class: OrderClass,
    quantity: str | None, notional: str | None, said: str | None, intent: Intent | None,
) -> None:  # fmt: skip
    problem = registry.terms_problem(
        BrokerKind.TRADIER, symbol, order_type, tif, order_class,
        quantity=None if quantity is None else Decimal(quantity),
        notional=None if notional is None else Decimal(notional), intent=intent,
    )  # fmt: skip

    if said is None:
        assert problem is None
    else:
        assert problem is not None
        assert said in problem


OPTION = "SPY250117P00450000"


@pytest.mark.parametrize(
    ("symbol", "side", "intent", "held", "word"),
    [
        (OPTION, Side.BUY, Intent.ENTRY, "0", "buy_to_open"),
        (OPTION, Side.SELL, Intent.ENTRY, "0", "sell_to_open"),
        (OPTION, Side.SELL, Intent.EXIT, "2", "sell_to_close"),
        (OPTION, Side.BUY, Intent.EXIT, "-2", "buy_to_close"),
        (OPTION, Side.SELL, Intent.EXIT, "0", "sell_to_close"),  # the entry's fill not yet in
        (OPTION, Side.SELL, Intent.ENTRY, "3", "sell_to_close"),  # the account is net long
        (OPTION, Side.BUY, Intent.ENTRY, "-1", "buy_to_close"),
        ("SPY", Side.BUY, Intent.ENTRY, "0", "buy"),
        ("SPY", Side.SELL, Intent.EXIT, "5", "sell"),
        ("SPY", Side.SELL, Intent.ENTRY, "0", "sell_short"),
        ("SPY", Side.SELL, Intent.ENTRY, "-5", "sell_short"),
        ("SPY", Side.SELL, Intent.ENTRY, "5", "sell"),  # reduces what another trade holds
        ("SPY", Side.BUY, Intent.EXIT, "-5", "buy_to_cover"),
        ("SPY", Side.BUY, Intent.EXIT, "0", "buy_to_cover"),
        ("SPY", Side.BUY, None, "-5", "buy_to_cover"),
        ("SPY", Side.BUY, None, "0", "buy"),
        ("SPY", Side.SELL, None, "0", "sell"),
        ("SPY", Side.SELL, None, None, "sell"),
    ],
)
def test_the_side_word_says_whether_the_order_opens_or_closes_what_the_account_holds(
    symbol: str, side: Side, intent: Intent | None, held: str | None, word: str
) -> None:
    request = PlaceOrderRequest(client_order_id="c", symbol=symbol, side=side,
                                quantity=Decimal(2), intent=intent,
                                held=None if held is None else Decimal(held))  # fmt: skip

    assert place_form(request)["side"] == word


def test_a_short_sale_is_for_the_day_only() -> None:
    request = PlaceOrderRequest(client_order_id="c", symbol="SPY", side=Side.SELL,
                                quantity=Decimal(2), time_in_force=TimeInForce.GTC,
                                intent=Intent.ENTRY, held=Decimal(0))  # fmt: skip

    with pytest.raises(Unplaceable, match="short sale for the day only"):
        place_form(request)


def test_an_option_order_is_of_class_option_on_its_underlying() -> None:
    request = PlaceOrderRequest(
        client_order_id="opt-1", symbol=OPTION, side=Side.BUY, quantity=Decimal(3),
        order_type=OrderType.LIMIT, limit_price=Decimal("4.15"), intent=Intent.ENTRY,
    )  # fmt: skip

    assert place_form(request) == {
        "class": "option", "symbol": "SPY", "option_symbol": OPTION, "side": "buy_to_open",
        "quantity": "3", "type": "limit", "duration": "day", "price": "4.15",
        "tag": tag_for("opt-1"),
    }  # fmt: skip


def test_an_option_order_without_intent_is_unplaceable() -> None:
    request = PlaceOrderRequest(client_order_id="c", symbol=OPTION, side=Side.SELL,
                                quantity=Decimal(1))  # fmt: skip

    with pytest.raises(Unplaceable, match="needs intent ENTRY or EXIT"):
        place_form(request)


def test_an_order_that_names_no_time_in_force_is_a_day_order() -> None:
    assert registry.default_time_in_force(BrokerKind.TRADIER, "AAPL") is TimeInForce.DAY


def test_a_limit_order_without_its_price_is_unplaceable() -> None:
    request = PlaceOrderRequest(client_order_id="c", symbol="AAPL", side=Side.BUY,
                                quantity=Decimal(1), order_type=OrderType.LIMIT)  # fmt: skip

    with pytest.raises(Unplaceable, match="needs a limit price"):
        place_form(request)


def test_the_registry_builds_the_adapter_from_the_account_number_and_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TR_KEY_ID", "VA000000")
    monkeypatch.setenv("TR_SECRET_KEY", "token-xyz")

    adapter = registry.make_adapter(
        account="t", broker=BrokerKind.TRADIER, base_url="https://sandbox.tradier.com/v1",
        credentials_env="TR", timeout_s=1.0, max_attempts=2, max_retry_wait_s=1.0,
    )  # fmt: skip

    assert isinstance(adapter, TradierBroker)
    assert "VA000000" in repr(adapter)
    assert "token-xyz" not in repr(adapter)
    adapter.close()


def test_a_page_token_round_trips_and_a_foreign_one_is_refused() -> None:
    cursor = paging.Cursor(datetime(2024, 3, 5, 15, tzinfo=UTC), 42,
                           datetime(2024, 3, 4, tzinfo=UTC), None)  # fmt: skip

    assert paging.decode(paging.encode(cursor)) == cursor
    with pytest.raises(ValueError, match="not a Tradier list_orders page token"):
        paging.decode("eyJ2IjogMn0=")  # {"v": 2}
