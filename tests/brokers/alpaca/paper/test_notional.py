"""Notional and fractional orders as Alpaca takes and fills them: dollars instead of a qty,
fills that never spend more than the notional, and every refusal in Alpaca's words."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus
from alpaca.trading.enums import TimeInForce as SdkTimeInForce
from alpaca.trading.models import Order as SdkOrder
from alpaca.trading.models import Position
from alpaca.trading.requests import MarketOrderRequest

from brokers.alpaca.paper.crypto import CryptoRefusal
from brokers.alpaca.paper.notional import FractionalRefusal
from brokers.alpaca.paper.replace import InvalidChangeError
from brokers.alpaca.paper.wire import activity_json, order_json, trade_update_json
from brokers.paper.engine import Engine, InsufficientBuyingPowerError
from brokers.paper.events import OrderEvent
from brokers.paper.model import QTY_QUANTUM, Order, OrderChanges, OrderRequest, PaperStatus
from brokers.paper.state import Sim
from core.enums import Side, TimeInForce
from tests.brokers.paper import (
    FakeClock,
    RecordingSleep,
    api_client,
    make_engine,
    make_sim,
    order,
)
from tests.paper_exchange import PaperExchange

ACK_MS = 5
PRICES = {"AAPL": Decimal("100.00"), "BTC/USD": Decimal("60000.00")}
MARKET = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}


def _engine(clock: FakeClock, **config: object) -> Engine:
    """Fixed ack delay, fills at once and whole unless told; AAPL at $100, BTC at $60,000."""
    settings: dict[str, object] = {
        "ack_delay_ms": (ACK_MS, ACK_MS),
        "fill_delay_ms": (0, 0),
        "partial_fill_probability": 0.0,
        "cfee_delay_ms": (0, 0),
        **config,
    }
    engine = make_engine(clock, **settings)  # type: ignore[arg-type]
    for symbol, price in PRICES.items():
        engine.set_price(symbol, price)
    return engine


def _notional(
    dollars: str,
    side: Side = Side.BUY,
    symbol: str = "AAPL",
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderRequest:
    """A notional market order, as the schema hands it to the engine (qty to be sized)."""
    return replace(order(symbol, "0", side, tif=tif), notional=Decimal(dollars))


def _fractional(qty: str, side: Side = Side.BUY, symbol: str = "AAPL") -> OrderRequest:
    return order(symbol, qty, side)


def _run(engine: Engine, clock: FakeClock, ms: float = 1000) -> None:
    clock.tick(ms)
    engine.advance()


def _spent(placed: Order) -> Decimal:
    return sum((fill.qty * fill.price for fill in placed.fills), Decimal(0))


def _refused(engine: Engine, request: OrderRequest) -> tuple[int, int, str]:
    """The refusal's status, code and message; no order is created."""
    before = len(engine.orders)
    with pytest.raises(FractionalRefusal) as refused:
        engine.submit(request)
    assert len(engine.orders) == before
    return refused.value.status, refused.value.code, refused.value.message


# -- fills -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_a_notional_order_fills_in_parts_that_never_spend_more_than_it(
    clock: FakeClock, seed: int
) -> None:
    engine = make_engine(
        clock,
        seed,
        ack_delay_ms=(ACK_MS, ACK_MS),
        fill_delay_ms=(0, 300),
        partial_fill_probability=1.0,
    )
    engine.set_price("AAPL", Decimal("100.00"))
    events: list[OrderEvent] = []
    engine.listeners.append(events.append)

    placed = engine.submit(_notional("500"))
    _run(engine, clock)

    assert placed.status is PaperStatus.FILLED
    assert len(placed.fills) >= 2
    spent = _spent(placed)
    assert spent <= Decimal(500)
    assert Decimal(500) - spent < placed.fills[-1].price * QTY_QUANTUM * len(placed.fills)
    assert placed.filled_qty == sum((fill.qty for fill in placed.fills), Decimal(0))
    for fill in placed.fills:
        assert fill.qty > 0
        assert fill.qty == fill.qty.quantize(QTY_QUANTUM)
    body = order_json(placed)
    assert (body["notional"], body["qty"]) == ("500", None)
    assert Decimal(str(body["filled_qty"])) == placed.filled_qty
    assert body["filled_avg_price"] is not None
    assert engine.account("paper").long_qty("AAPL") == placed.filled_qty
    assert engine.account("paper").reserved(engine.price_of) == 0
    fills = [e for e in events if e.fill is not None]
    assert [e.event.value for e in fills][-1] == "fill"
    assert {e.event.value for e in fills[:-1]} == {"partial_fill"}
    for event in events:
        data: Any = trade_update_json(event, "x")["data"]
        assert (data["order"]["notional"], data["order"]["qty"]) == ("500", None)
    activity = activity_json(placed.fills[0])
    assert (Decimal(str(activity["qty"])), activity["order_status"]) == (
        placed.fills[0].qty,
        "partially_filled",
    )


def test_a_notional_order_buys_what_its_dollars_buy_at_the_fill_price(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_notional("500"))
    engine.force_fill(placed.id, price=Decimal("300.00"))

    assert placed.status is PaperStatus.FILLED
    assert placed.filled_qty == Decimal("1.666666666")  # rounded down: never over $500
    assert _spent(placed) == Decimal("499.9999998")


def test_a_forced_partial_fill_leaves_what_the_rest_of_the_dollars_buy(clock: FakeClock) -> None:
    engine = _engine(clock, fill_delay_ms=(60_000, 60_000))
    placed = engine.submit(_notional("500"))
    _run(engine, clock, ACK_MS)

    first = engine.force_fill(placed.id, qty=Decimal(2), price=Decimal("100.00"))
    assert (first.leaves_qty, placed.status) == (Decimal(3), PaperStatus.PARTIALLY_FILLED)
    last = engine.force_fill(placed.id, price=Decimal("150.00"))

    assert (last.qty, last.leaves_qty, placed.status) == (
        Decimal(2),
        Decimal(0),
        PaperStatus.FILLED,
    )
    assert _spent(placed) == Decimal(500)


def test_a_notional_sell_sells_part_of_a_long_position(clock: FakeClock) -> None:
    engine = _engine(clock)
    bought = engine.submit(_fractional("10"))
    engine.force_fill(bought.id, price=Decimal("100.00"))

    sold = engine.submit(_notional("250", Side.SELL))
    engine.force_fill(sold.id, price=Decimal("100.00"))

    assert (sold.status, sold.filled_qty) == (PaperStatus.FILLED, Decimal("2.5"))
    assert engine.account("paper").long_qty("AAPL") == Decimal("7.5")


def test_a_fractional_qty_market_day_order_fills_its_fraction(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_fractional("0.123456789"))
    _run(engine, clock)

    body = order_json(placed)
    assert (body["status"], body["qty"], body["notional"]) == ("filled", "0.123456789", None)
    assert body["filled_qty"] == "0.123456789"


def test_a_notional_crypto_order_fills_and_pays_its_fee_in_the_coin(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_notional("100", symbol="BTCUSD", tif=TimeInForce.GTC))
    _run(engine, clock)

    body = order_json(placed)
    assert (body["symbol"], body["asset_class"], body["status"]) == ("BTC/USD", "crypto", "filled")
    assert (body["notional"], body["qty"]) == ("100", None)
    assert _spent(placed) <= Decimal(100)
    fee = placed.fills[0].fee
    assert fee is not None
    assert engine.account("paper").long_qty("BTC/USD") == placed.filled_qty - fee.amount


def test_a_notional_crypto_ioc_order_fills_at_once(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_notional("100", symbol="BTC/USD", tif=TimeInForce.IOC))
    _run(engine, clock, ACK_MS)

    assert placed.status is PaperStatus.FILLED
    assert Decimal(100) - _spent(placed) < Decimal("60000.01") * QTY_QUANTUM


# -- cancels, expiry and buying power ----------------------------------------------------


def test_a_notional_buy_holds_its_dollars_of_buying_power(clock: FakeClock) -> None:
    engine = _engine(clock, starting_cash=Decimal(1000), fill_delay_ms=(60_000, 60_000))
    with pytest.raises(InsufficientBuyingPowerError):
        engine.submit(_notional("1000.01"))

    placed = engine.submit(_notional("1000"))
    assert placed.status is PaperStatus.ACCEPTED
    with pytest.raises(InsufficientBuyingPowerError):
        engine.submit(_notional("1"))


def test_a_notional_order_is_canceled_as_any_and_gives_its_buying_power_back(
    clock: FakeClock,
) -> None:
    engine = _engine(clock, fill_delay_ms=(60_000, 60_000), cancel_delay_ms=(0, 0))
    placed = engine.submit(_notional("500"))
    _run(engine, clock, ACK_MS)
    engine.force_fill(placed.id, qty=Decimal(1), price=Decimal("120.00"))

    engine.cancel(placed.id)
    _run(engine, clock, 1)

    assert (placed.status, placed.filled_qty) == (PaperStatus.CANCELED, Decimal(1))
    assert engine.account("paper").reserved(engine.price_of) == 0


def test_a_notional_day_order_expires_at_the_close(clock: FakeClock) -> None:
    engine = _engine(clock, fill_delay_ms=(60_000, 60_000))
    placed = engine.submit(_notional("500"))
    _run(engine, clock, ACK_MS)

    assert engine.close_day().expired == 1
    assert placed.status is PaperStatus.EXPIRED
    assert engine.account("paper").reserved(engine.price_of) == 0


def test_a_notional_order_is_not_replaced(clock: FakeClock) -> None:
    engine = _engine(clock, fill_delay_ms=(60_000, 60_000))
    placed = engine.submit(_notional("500"))
    _run(engine, clock, ACK_MS)

    with pytest.raises(InvalidChangeError, match="notional orders cannot be replaced"):
        engine.replace(placed.id, "paper", OrderChanges(time_in_force=TimeInForce.DAY))
    assert placed.status is PaperStatus.NEW


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (_notional("100", symbol="BRK.A"), (422, 42210000, "requested asset is not fractionable")),
        (
            _fractional("0.5", symbol="BRK.A"),
            (422, 42210000, "requested asset is not fractionable"),
        ),
        (_notional("0.99"), (422, 42210000, "notional amount must be >= 1.00")),
        (
            _notional("10", Side.SELL),
            (422, 42210000, "fractional orders are not allowed to short"),
        ),
        (
            _fractional("0.5", Side.SELL),
            (422, 42210000, "fractional orders are not allowed to short"),
        ),
    ],
)
def test_the_engine_refuses_what_alpaca_refuses(
    clock: FakeClock, request_: OrderRequest, answer: tuple[int, int, str]
) -> None:
    assert _refused(_engine(clock), request_) == answer


def test_a_fractional_sell_may_not_outgrow_the_position_less_open_sells(clock: FakeClock) -> None:
    engine = _engine(clock, fill_delay_ms=(60_000, 60_000))
    bought = engine.submit(_fractional("1"))
    engine.force_fill(bought.id, price=Decimal("100.00"))
    engine.submit(_fractional("0.6", Side.SELL))

    status, _, message = _refused(engine, _notional("50", Side.SELL))
    assert (status, message) == (422, "fractional orders are not allowed to short")
    assert engine.submit(_notional("30", Side.SELL)).status is PaperStatus.ACCEPTED


def test_crypto_notional_orders_meet_cryptos_floor(clock: FakeClock) -> None:
    engine = _engine(clock)
    with pytest.raises(CryptoRefusal) as refused:
        engine.submit(_notional("9.99", symbol="BTC/USD", tif=TimeInForce.GTC))
    assert (refused.value.status, refused.value.message) == (
        403,
        "cost basis must be >= minimal amount of order 10",
    )
    assert engine.submit(_notional("10", symbol="BTC/USD", tif=TimeInForce.GTC)).notional == 10


def test_a_crypto_notional_buy_is_checked_against_the_cash_by_its_dollars(
    clock: FakeClock,
) -> None:
    engine = _engine(clock, starting_cash=Decimal(100))
    with pytest.raises(CryptoRefusal) as refused:
        engine.submit(_notional("100.01", symbol="BTC/USD", tif=TimeInForce.GTC))
    assert (
        refused.value.message == "insufficient balance for USD (requested: 100.01, available: 100)"
    )
    assert engine.submit(_notional("100", symbol="BTC/USD", tif=TimeInForce.GTC)).is_open


@pytest.fixture
def sim(clock: FakeClock, sleep: RecordingSleep) -> Sim:
    return make_sim(clock, sleep)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "answer"),
    [
        ({}, (422, 40010001, "qty is required")),
        (
            {"qty": "1", "notional": "100"},
            (422, 40010001, "only one of qty or notional may be specified"),
        ),
        ({"notional": "0"}, (422, 40010001, "notional: notional must be a positive decimal")),
        ({"notional": "1.0000000001"}, (422, 40010001, "notional has more than 9 decimal places")),
        (
            {"notional": "100", "type": "limit", "limit_price": "50"},
            (422, 40010001, "notional orders must be market orders"),
        ),
        (
            {"notional": "100", "time_in_force": "gtc"},
            (422, 40010001, "fractional orders must be day orders"),
        ),
        (
            {"qty": "0.5", "type": "limit", "limit_price": "50"},
            (422, 40010001, "fractional orders must be market orders"),
        ),
        (
            {"qty": "0.5", "time_in_force": "gtc"},
            (422, 40010001, "fractional orders must be day orders"),
        ),
        (
            {
                "notional": "100",
                "order_class": "bracket",
                "take_profit": {"limit_price": "500"},
                "stop_loss": {"stop_price": "5"},
            },
            (422, 40010001, "fractional orders must be simple orders"),
        ),
        (
            {
                "symbol": "BTC/USD",
                "notional": "100",
                "type": "limit",
                "limit_price": "1",
                "time_in_force": "gtc",
            },
            (422, 40010001, "notional orders must be market orders"),
        ),
        (
            {"symbol": "BRK.A", "notional": "100"},
            (422, 42210000, "requested asset is not fractionable"),
        ),
        ({"notional": "0.5"}, (422, 42210000, "notional amount must be >= 1.00")),
        (
            {"side": "sell", "notional": "5"},
            (422, 42210000, "fractional orders are not allowed to short"),
        ),
    ],
)
async def test_refusals_answer_in_alpacas_shape(
    sim: Sim, change: dict[str, Any], answer: tuple[int, int, str]
) -> None:
    async with api_client(sim) as client:
        placed = await client.post("/v2/orders", json={**MARKET, **change})
    body = placed.json()
    if answer[2].startswith("notional:"):  # a field error names its field
        answer = (answer[0], answer[1], answer[2].removeprefix("notional: "))
        assert "notional" in body["message"]
    assert (placed.status_code, body["code"], body["message"]) == answer
    assert sim.engine.orders == []


@pytest.mark.anyio
async def test_the_api_shows_a_notional_order_with_qty_null_everywhere(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        placed = await client.post("/v2/orders", json={**MARKET, "notional": 500})
        order_id = placed.json()["id"]
        clock.tick(1000)
        got = (await client.get(f"/v2/orders/{order_id}")).json()
        listed = (await client.get("/v2/orders", params={"status": "all"})).json()
        fills = (await client.get("/v2/account/activities/FILL")).json()
        patched = await client.patch(f"/v2/orders/{order_id}", json={"notional": "600"})

    assert (placed.status_code, placed.json()["notional"], placed.json()["qty"]) == (
        200,
        "500",
        None,
    )
    assert (got["status"], got["notional"], got["qty"]) == ("filled", "500", None)
    assert [(o["id"], o["notional"], o["qty"]) for o in listed] == [(order_id, "500", None)]
    spent = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills)
    assert 0 < spent <= 500
    assert sum(Decimal(f["qty"]) for f in fills) == Decimal(got["filled_qty"])
    assert (patched.status_code, patched.json()["message"]) == (
        422,
        "notional can be replaced only on IPO orders",
    )


# -- alpaca-py ---------------------------------------------------------------------------


@pytest.mark.integration
def test_alpaca_py_places_a_notional_order_and_reads_it_back(
    paper_exchange: PaperExchange,
) -> None:
    client = TradingClient(
        paper_exchange.key_id, paper_exchange.secret_key, url_override=paper_exchange.base_url
    )
    paper_exchange.set_faults(partial_fill_probability=1.0)
    paper_exchange.freeze_market()
    paper_exchange.set_price("AAPL", "187.31")
    placed = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL", notional=500, side=OrderSide.BUY, time_in_force=SdkTimeInForce.DAY
        )
    )
    assert isinstance(placed, SdkOrder)
    assert (placed.notional, placed.qty) == ("500", None)

    def filled() -> SdkOrder | None:
        found = client.get_order_by_id(placed.id)
        assert isinstance(found, SdkOrder)
        return found if found.status == OrderStatus.FILLED else None

    done = paper_exchange.wait_for(filled)
    assert done is not None
    truth = paper_exchange.truth_order(str(placed.id))
    spent = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in truth["fills"])
    assert (done.notional, done.qty) == ("500", None)
    assert Decimal(str(done.filled_qty)) == Decimal(truth["filled_qty"]) > 0
    assert Decimal(500) - Decimal("187.32") * QTY_QUANTUM * len(truth["fills"]) < spent <= 500
    position = client.get_open_position("AAPL")
    assert isinstance(position, Position)
    assert Decimal(str(position.qty)) == Decimal(truth["filled_qty"])
