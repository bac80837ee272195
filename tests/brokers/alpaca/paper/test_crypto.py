"""Crypto as Alpaca trades it: pairs in orders, BTCUSD in positions, the order rules, trading
around the clock, fees in the asset received and their CFEE activities."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from brokers.alpaca.paper.assets import asset_for
from brokers.alpaca.paper.crypto import CryptoRefusal, CryptoSettings, fee_symbol, in_usd
from brokers.alpaca.paper.queries import list_activities, list_fees, list_fills
from brokers.alpaca.paper.rules import AlpacaRules
from brokers.alpaca.paper.wire import fee_activity_json, order_json, positions_json, truth_json
from brokers.paper.engine import Engine
from brokers.paper.model import Order, OrderChanges, OrderRequest, PaperStatus, asset_id
from brokers.paper.state import Sim
from core.enums import OrderType, Side, TimeInForce
from tests.brokers.paper import (
    FakeClock,
    RecordingSleep,
    api_client,
    make_engine,
    make_sim,
    order,
    status_time,
    statuses,
)

START_CASH = Decimal(1_000_000)
BTC_ID = asset_id("BTC/USD")
CFEE_ID = re.compile(
    r"\d{8}000000000::[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
# Alpaca's documented CFEE object ("Crypto Fees"), a coin fee; this exchange adds the
# created_at and currency that live CFEE rows carry.
DOCUMENTED_CFEE_KEYS = {
    "id", "activity_type", "date", "net_amount", "description", "symbol", "qty", "price",
    "status",
}  # fmt: skip
USD_CFEE_KEYS = {"id", "activity_type", "date", "net_amount", "description", "status"}


def _engine(clock: FakeClock, **config: object) -> Engine:
    """Fills at once and whole, fees posted at once; BTC at $60,000, AAPL at $100."""
    config.setdefault("partial_fill_probability", 0.0)
    config.setdefault("fill_delay_ms", (0, 0))
    config.setdefault("cfee_delay_ms", (0, 0))
    engine = make_engine(clock, **config)
    engine.set_price("BTC/USD", Decimal("60000.00"))
    engine.set_price("ETH/USD", Decimal("3000.00"))
    engine.set_price("AAPL", Decimal("100.00"))
    return engine


def _btc(
    qty: str,
    side: Side = Side.BUY,
    type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    limit: str | None = "50000",
    stop: str | None = None,
    symbol: str = "BTC/USD",
) -> OrderRequest:
    """A crypto order; by default a GTC limit buy resting far below the market."""
    if type is OrderType.MARKET:
        limit = None
    return order(symbol, qty, side, type, tif, limit=limit, stop=stop)


def _bought(engine: Engine, qty: str, price: str = "50000") -> Order:
    """A BTC/USD buy of ``qty`` filled at exactly ``price``."""
    placed = engine.submit(_btc(qty))
    engine.force_fill(placed.id, price=Decimal(price))
    return placed


def _refusal(engine: Engine, request: OrderRequest) -> CryptoRefusal:
    with pytest.raises(CryptoRefusal) as refused:
        engine.submit(request)
    return refused.value


# -- symbols -------------------------------------------------------------------------------


@pytest.mark.parametrize("placed_as", ["BTC/USD", "BTCUSD"])
def test_orders_name_the_pair_and_carry_the_crypto_asset(clock: FakeClock, placed_as: str) -> None:
    engine = _engine(clock)

    placed = engine.submit(_btc("0.5", symbol=placed_as))
    body = order_json(placed)

    assert placed.symbol == "BTC/USD"
    assert (body["symbol"], body["asset_class"]) == ("BTC/USD", "crypto")
    btc = asset_for("BTC/USD")
    assert btc is not None
    assert body["asset_id"] == btc.id == BTC_ID
    assert order_json(engine.submit(order("AAPL")))["asset_class"] == "us_equity"


def test_positions_name_the_asset_without_the_slash(clock: FakeClock) -> None:
    engine = _engine(clock)
    _bought(engine, "0.02")
    engine.force_fill(engine.submit(order("AAPL", "3")).id, price=Decimal("100.00"))

    positions = positions_json(engine.account("paper"), engine.price_of)

    assert [(p["symbol"], p["asset_class"], p["exchange"]) for p in positions] == [
        ("AAPL", "us_equity", "NASDAQ"),
        ("BTCUSD", "crypto", "CRYPTO"),
    ]
    btc = positions[1]
    assert btc["asset_id"] == BTC_ID
    assert (btc["qty"], btc["qty_available"], btc["side"]) == ("0.01995", "0.01995", "long")
    assert btc["avg_entry_price"] == "50000.00"
    assert btc["current_price"] == "60000.00"
    assert btc["market_value"] == "1197.00"  # 0.01995 x 60,000


# -- the rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "status", "code", "message"),
    [
        (_btc("1", tif=TimeInForce.DAY), 422, 42210000, "invalid crypto time_in_force"),
        (_btc("1", tif=TimeInForce.FOK), 422, 42210000, "invalid crypto time_in_force"),
        (
            _btc("1", type=OrderType.STOP, limit=None, stop="70000"),
            422,
            40010001,
            "invalid order type for crypto order",
        ),
        (
            OrderRequest(
                symbol="BTC/USD",
                qty=Decimal(1),
                side=Side.BUY,
                type=OrderType.MARKET,
                time_in_force=TimeInForce.GTC,
                order_class="bracket",
            ),
            422,
            42210000,
            "crypto orders not allowed for advanced order_class: otoco",
        ),
        (
            _btc("0.0001", limit="60000"),
            403,
            40310000,
            "cost basis must be >= minimal amount of order 10",
        ),
        (
            _btc("0.01", side=Side.SELL, limit="70000"),
            403,
            40310000,
            "insufficient balance for BTC (requested: 0.01, available: 0)",
        ),
        (
            _btc("20", limit="60000"),
            403,
            40310000,
            "insufficient balance for USD (requested: 1200000, available: 1000000)",
        ),
    ],
)
def test_alpacas_refusals_leave_nothing_behind(
    clock: FakeClock, request_: OrderRequest, status: int, code: int, message: str
) -> None:
    engine = _engine(clock)

    refused = _refusal(engine, request_)

    assert (refused.status, refused.code, refused.message) == (status, code, message)
    assert engine.orders == []
    assert engine.account("paper").by_client_id == {}


def test_no_short_selling_and_open_sells_hold_what_they_may_sell(clock: FakeClock) -> None:
    engine = _engine(clock)
    _bought(engine, "0.02")  # 0.01995 held once the 0.00005 BTC fee is taken

    over = _refusal(engine, _btc("0.02", side=Side.SELL, limit="70000"))
    resting = engine.submit(_btc("0.015", side=Side.SELL, limit="70000"))
    second = _refusal(engine, _btc("0.005", side=Side.SELL, limit="70000"))
    rest = engine.submit(_btc("0.00495", side=Side.SELL, limit="70000"))

    assert over.message == "insufficient balance for BTC (requested: 0.02, available: 0.01995)"
    assert over.extra == {"available": "0.01995", "balance": "0.01995", "symbol": "USD"}
    assert second.message == "insufficient balance for BTC (requested: 0.005, available: 0.00495)"
    assert (resting.status, rest.status) == (PaperStatus.ACCEPTED, PaperStatus.ACCEPTED)
    position = positions_json(engine.account("paper"), engine.price_of)[0]
    assert (position["qty"], position["qty_available"]) == ("0.01995", "0")


def test_the_limits_can_be_set_off(clock: FakeClock) -> None:
    engine = _engine(clock, crypto_min_notional=Decimal(0))

    tiny = engine.submit(_btc("0.000001", type=OrderType.MARKET))

    assert tiny.status is PaperStatus.ACCEPTED


def test_a_sell_replaced_may_not_outgrow_what_is_held(clock: FakeClock) -> None:
    engine = _engine(clock)
    bought = engine.submit(order("ETH/USD", "3", tif=TimeInForce.GTC))
    engine.force_fill(bought.id, price=Decimal("3000.00"))  # 2.9925 ETH held
    sell = engine.submit(order("ETH/USD", "2", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, "4000"))
    clock.tick(10)

    with pytest.raises(CryptoRefusal) as refused:
        engine.replace(sell.id, "paper", OrderChanges(qty=Decimal(3)))
    replaced = engine.replace(sell.id, "paper", OrderChanges(limit_price=Decimal("3900")))

    assert refused.value.message == "insufficient balance for ETH (requested: 3, available: 2.9925)"
    assert (replaced.qty, replaced.limit_price) == (Decimal(2), Decimal("3900"))


def test_a_replacement_keeps_the_crypto_terms(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_btc("1"))
    clock.tick(10)

    with pytest.raises(CryptoRefusal) as refused:
        engine.replace(placed.id, "paper", OrderChanges(time_in_force=TimeInForce.DAY))
    replaced = engine.replace(placed.id, "paper", OrderChanges(limit_price=Decimal("51000")))

    assert refused.value.message == "invalid crypto time_in_force"
    assert (replaced.symbol, replaced.crypto, replaced.limit_price) == (
        "BTC/USD",
        True,
        Decimal("51000"),
    )


# -- around the clock ----------------------------------------------------------------------


def test_crypto_is_routed_and_fills_while_the_market_is_closed(clock: FakeClock) -> None:
    engine = _engine(clock, session_s=60.0, overnight_s=3600.0)
    engine.close_day()
    assert not engine.session.is_open

    market = engine.submit(_btc("0.01", type=OrderType.MARKET))
    ioc = engine.submit(_btc("0.01", type=OrderType.LIMIT, tif=TimeInForce.IOC, limit="61000"))
    stock = engine.submit(order("AAPL", "1", tif=TimeInForce.GTC))
    clock.tick(10)
    engine.advance()

    assert statuses(market) == ["accepted", "new", "filled"]
    assert statuses(ioc) == ["accepted", "new", "filled"]
    # Routed at once, not at the open.
    assert market.submitted_us == status_time(market, PaperStatus.NEW)
    assert not market.parked
    assert (stock.status, stock.parked) == (PaperStatus.ACCEPTED, True)  # waits for the open
    assert not engine.session.is_open  # the clock is the equities' one


def test_resting_crypto_orders_cross_while_closed_and_survive_the_close(clock: FakeClock) -> None:
    engine = _engine(clock, session_s=60.0, overnight_s=3600.0)
    limit = engine.submit(_btc("0.01", limit="55000"))
    stop_limit = engine.submit(_btc("0.01", type=OrderType.STOP_LIMIT, stop="65000", limit="66000"))
    partial = engine.submit(_btc("0.02"))
    stock = engine.submit(order("AAPL", "1", type=OrderType.LIMIT, limit="90.00"))
    clock.tick(10)
    engine.force_fill(partial.id, qty=Decimal("0.01"), price=Decimal("50000"))

    closed = engine.close_day()
    engine.set_price("BTC/USD", Decimal("54000.00"))  # crosses the limit buy, overnight
    engine.set_price("AAPL", Decimal("80.00"))  # crosses the stock's too, which waits
    crossed_limit = limit.status
    engine.set_price("BTC/USD", Decimal("65500.00"))  # triggers the stop, limit marketable

    assert closed.expired == 1  # the stock's day order, and nothing else
    assert closed.done_for_day == 0
    assert crossed_limit is PaperStatus.FILLED
    assert statuses(stop_limit) == ["accepted", "new", "filled"]
    assert partial.status is PaperStatus.PARTIALLY_FILLED  # not done_for_day, not parked
    assert not partial.parked
    assert stock.status is PaperStatus.EXPIRED
    assert truth_json(partial)["parked"] is False


# -- fees ----------------------------------------------------------------------------------


def test_a_buy_pays_its_fee_in_the_coin_received(clock: FakeClock) -> None:
    engine = _engine(clock)

    placed = _bought(engine, "0.012345678")

    owner = engine.account("paper")
    # 0.25% of 0.012345678 BTC is 0.000030864195, rounded up to 1e-9.
    assert owner.long_qty("BTC/USD") == Decimal("0.012314813")
    assert owner.ledger.cash == START_CASH - Decimal("617.2839")  # the full price paid
    assert truth_json(placed)["fills"][0]["fee"] == {
        "asset": "BTC",
        "amount": "0.000030865",
        "price": "50000",
        "activity_id": owner.fee_ids[0],
        "posted_at": truth_json(placed)["fills"][0]["time"],
    }
    assert [fee_activity_json(fee) for fee in owner.fees] == [
        {
            "id": owner.fee_ids[0],
            "activity_type": "CFEE",
            "date": "2026-03-02",
            "created_at": "2026-03-02T14:30:00.000000Z",
            "net_amount": "0",
            "description": "Coin Pair Transaction Fee (Non USD)",
            "symbol": "BTCUSD",
            "qty": "-0.000030865",
            "price": "50000",
            "status": "executed",
            "currency": "USD",
        }
    ]
    assert CFEE_ID.fullmatch(owner.fee_ids[0])
    assert owner.fee_ids[0].startswith("20260302000000000::")


def test_a_sell_pays_its_fee_in_dollars(clock: FakeClock) -> None:
    engine = _engine(clock)
    _bought(engine, "0.02")
    owner = engine.account("paper")
    cash = owner.ledger.cash
    sell = engine.submit(_btc("0.01", side=Side.SELL, limit="70000"))

    engine.force_fill(sell.id, price=Decimal("61234.56"))

    # Proceeds 612.3456; 0.25% of them is 1.530864, rounded up to the cent.
    assert owner.ledger.cash == cash + Decimal("612.3456") - Decimal("1.54")
    assert owner.long_qty("BTC/USD") == Decimal("0.00995")
    usd = fee_activity_json(next(fee for fee in owner.fees if in_usd(fee)))
    assert set(usd) == USD_CFEE_KEYS | {"created_at", "currency"}
    assert (usd["net_amount"], usd["description"]) == ("-1.54", "Coin Pair Transaction Fee (USD)")
    assert truth_json(sell)["fills"][0]["fee"]["asset"] == "USD"


def test_each_partial_fill_has_its_own_fee(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = engine.submit(_btc("0.03"))

    for qty in ("0.01", "0.015", "0.005"):
        engine.force_fill(placed.id, qty=Decimal(qty), price=Decimal("50000"))

    fees = [fill["fee"]["amount"] for fill in truth_json(placed)["fills"]]
    assert fees == ["0.000025", "0.0000375", "0.0000125"]
    assert engine.account("paper").long_qty("BTC/USD") == Decimal("0.029925")
    assert len(list_fees(engine)) == 3


def test_the_fee_rate_is_a_setting_and_zero_turns_fees_off(clock: FakeClock) -> None:
    engine = _engine(clock, crypto_fee_bps=Decimal("10"))
    ten = _bought(engine, "0.02")
    free = CryptoSettings(crypto_fee_bps=Decimal(0), cfee_delay_ms=(0, 0))
    engine.rules = AlpacaRules(lambda: free)
    gratis = _bought(engine, "0.01")

    assert truth_json(ten)["fills"][0]["fee"]["amount"] == "0.00002"
    assert truth_json(gratis)["fills"][0]["fee"] is None
    assert engine.account("paper").long_qty("BTC/USD") == Decimal("0.02998")
    assert len(list_fees(engine)) == 1


def test_equities_pay_no_fee(clock: FakeClock) -> None:
    engine = _engine(clock)

    stock = engine.submit(order("AAPL", "3"))
    engine.force_fill(stock.id, price=Decimal("100.00"))

    owner = engine.account("paper")
    assert owner.ledger.cash == START_CASH - 300
    assert owner.long_qty("AAPL") == 3
    assert "fee" not in truth_json(stock)["fills"][0]
    assert stock.fills[0].fee is None
    assert list_fees(engine) == []


def test_a_coin_pair_spends_one_coin_and_pays_in_the_other(clock: FakeClock) -> None:
    engine = _engine(clock)
    engine.set_price("ETH/BTC", Decimal("0.05"))
    _bought(engine, "1")  # 0.9975 BTC held
    owner = engine.account("paper")
    cash = owner.ledger.cash

    buy = engine.submit(
        order("ETH/BTC", "2", tif=TimeInForce.GTC, type=OrderType.LIMIT, limit="0.04")
    )
    engine.force_fill(buy.id, price=Decimal("0.05"))
    sell = engine.submit(order("ETH/BTC", "1", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, "0.06"))
    engine.force_fill(sell.id, price=Decimal("0.06"))

    assert owner.ledger.cash == cash  # no dollars move
    assert owner.long_qty("ETH/USD") == Decimal("2") - Decimal("0.005") - 1
    # 0.9975 - 0.1 spent + 0.06 received less 0.00015 (0.25% of it)
    assert owner.long_qty("BTC/USD") == Decimal("0.95735")
    fees = [fill.fee for fill in engine.fills]
    coins = [(fee.asset, fee.amount, fee_symbol(fee)) for fee in fees if fee is not None]
    assert coins == [
        ("BTC", Decimal("0.0025"), "BTCUSD"),
        ("ETH", Decimal("0.005"), "ETHUSD"),
        ("BTC", Decimal("0.00015"), "BTCUSD"),
    ]
    held = {p["symbol"] for p in positions_json(owner, engine.price_of)}
    assert held == {"BTCUSD", "ETHUSD"}
    too_much = _refusal(engine, order("ETH/BTC", "30", tif=TimeInForce.GTC))
    assert too_much.message == "insufficient balance for BTC (requested: 1.5, available: 0.95735)"


# -- CFEE activities -------------------------------------------------------------------------


def test_a_fee_is_posted_after_the_delay_not_before(clock: FakeClock) -> None:
    engine = _engine(clock, cfee_delay_ms=(2000, 2000))
    placed = _bought(engine, "0.02")
    owner = engine.account("paper")

    assert owner.long_qty("BTC/USD") == Decimal("0.01995")  # the balance is net at once
    assert len(list_fills(engine)) == 1
    clock.tick(1999)
    assert list_fees(engine) == []
    clock.tick(1)
    posted = list_fees(engine)

    assert [fee.fill_id for fee in posted] == [placed.fills[0].id]
    assert fee_activity_json(posted[0])["created_at"] == "2026-03-02T14:30:02.000000Z"
    assert truth_json(placed)["fills"][0]["fee"]["posted_at"] == "2026-03-02T14:30:02.000000Z"


def test_fee_activities_page_by_id_like_fills(clock: FakeClock) -> None:
    engine = _engine(clock)
    for _ in range(5):
        _bought(engine, "0.01")
        clock.tick(1)
    ids = sorted(fee.id for fee in list_fees(engine))

    first = list_fees(engine, direction="asc", page_size=2)
    second = list_fees(engine, direction="asc", page_size=2, page_token=first[-1].id)
    third = list_fees(engine, direction="asc", page_size=2, page_token=second[-1].id)
    newest = list_fees(engine, page_size=3)

    assert len(ids) == 5
    assert [fee.id for fee in first + second + third] == ids
    assert [fee.id for fee in newest] == ids[::-1][:3]
    assert list_fees(engine, date="2026-03-02", page_size=100) == list_fees(engine)
    assert list_fees(engine, date="2026-03-03") == []


def test_fills_and_fees_list_together_in_one_id_order(clock: FakeClock) -> None:
    engine = _engine(clock)
    placed = _bought(engine, "0.01")
    stock = engine.submit(order("AAPL", "1"))
    engine.force_fill(stock.id, price=Decimal("100.00"))

    both = list_activities(engine, types={"CFEE", "FILL"}, direction="asc")
    fees_only = list_activities(engine, types={"CFEE"})
    first = list_activities(engine, types={"CFEE", "FILL"}, direction="asc", page_size=1)
    rest = list_activities(engine, types={"CFEE", "FILL"}, direction="asc", page_token=first[0].id)

    fee = placed.fills[0].fee
    assert fee is not None
    # A CFEE id carries its date only, so it sorts before that day's fills.
    assert [item.id for item in both] == [fee.id, *sorted(f.id for f in engine.fills)]
    assert fees_only == [fee]
    assert first + rest == both


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    made = make_sim(
        clock,
        RecordingSleep(),
        partial_fill_probability=0.0,
        fill_delay_ms=(0, 0),
        cfee_delay_ms=(0, 0),
    )
    made.engine.set_price("BTC/USD", Decimal("60000.00"))
    return made


MARKET_BTC = {
    "symbol": "BTCUSD",
    "qty": "0.01",
    "side": "buy",
    "type": "market",
    "time_in_force": "gtc",
}


@pytest.mark.anyio
async def test_http_places_crypto_and_shows_positions_net_of_the_fee(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        placed = (await client.post("/v2/orders", json=MARKET_BTC)).json()
        clock.tick(10)
        filled = (await client.get(f"/v2/orders/{placed['id']}")).json()
        positions = (await client.get("/v2/positions")).json()
        found = [
            (await client.get(f"/v2/positions/{key}")).json()
            for key in ("BTCUSD", "BTC/USD", "BTC%2FUSD", BTC_ID)
        ]
        account = (await client.get("/v2/account")).json()
        fees = (await client.get("/v2/account/activities/CFEE")).json()
        both = (
            await client.get("/v2/account/activities", params={"activity_types": "CFEE,FILL"})
        ).json()
        truth = (await client.get(f"/_sim/truth/orders/{placed['id']}")).json()

    assert (placed["symbol"], placed["asset_class"], placed["asset_id"]) == (
        "BTC/USD",
        "crypto",
        BTC_ID,
    )
    assert (filled["status"], filled["filled_qty"]) == ("filled", "0.01")  # gross, as Alpaca's
    price = Decimal(filled["filled_avg_price"])
    assert [(p["symbol"], p["asset_class"], p["qty"]) for p in positions] == [
        ("BTCUSD", "crypto", "0.009975")
    ]
    assert found == positions * 4
    assert Decimal(account["cash"]) == (START_CASH - Decimal("0.01") * price).quantize(
        Decimal("0.01")
    )
    assert len(fees) == 1
    assert set(fees[0]) == DOCUMENTED_CFEE_KEYS | {"created_at", "currency"}
    assert (fees[0]["symbol"], fees[0]["qty"], fees[0]["net_amount"]) == (
        "BTCUSD",
        "-0.000025",
        "0",
    )
    assert "order_id" not in fees[0]
    assert [a["activity_type"] for a in both] == ["FILL", "CFEE"]  # newest first
    assert truth["fills"][0]["fee"]["amount"] == "0.000025"
    assert truth["fills"][0]["fee"]["activity_id"] == fees[0]["id"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        (
            {"time_in_force": "day"},
            422,
            {"code": 42210000, "message": "invalid crypto time_in_force"},
        ),
        (
            {"type": "stop", "stop_price": "70000"},
            422,
            {"code": 40010001, "message": "invalid order type for crypto order"},
        ),
        (
            {
                "order_class": "bracket",
                "qty": "0.001",
                "take_profit": {"limit_price": "70000"},
                "stop_loss": {"stop_price": "50000"},
            },
            422,
            {
                "code": 42210000,
                "message": "crypto orders not allowed for advanced order_class: otoco",
            },
        ),
        (
            {"side": "sell"},
            403,
            {
                "available": "0",
                "balance": "0",
                "symbol": "USD",
                "code": 40310000,
                "message": "insufficient balance for BTC (requested: 0.01, available: 0)",
            },
        ),
        (
            {"qty": "0.0001"},
            403,
            {"code": 40310000, "message": "cost basis must be >= minimal amount of order 10"},
        ),
    ],
)
async def test_http_refusals_are_alpacas(
    sim: Sim, change: dict[str, Any], status: int, body: dict[str, Any]
) -> None:
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json={**MARKET_BTC, **change})
        listed = (await client.get("/v2/orders", params={"status": "all"})).json()

    assert answer.status_code == status
    assert answer.json() == body
    assert listed == []


@pytest.mark.anyio
async def test_http_fee_activities_wait_for_their_delay_and_settings_change_them(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        settings = (
            await client.put(
                "/_sim/faults", json={"cfee_delay_ms": [1500, 1500], "crypto_fee_bps": 10}
            )
        ).json()
        refused = await client.put("/_sim/faults", json={"cfee_delay_ms": [2, 1]})
        await client.post("/v2/orders", json=MARKET_BTC)
        clock.tick(10)
        before = (await client.get("/v2/account/activities/CFEE")).json()
        position = (await client.get("/v2/positions/BTCUSD")).json()
        clock.tick(1500)
        after = (await client.get("/v2/account/activities/CFEE")).json()
        unknown = await client.get("/v2/account/activities", params={"activity_types": "NOPE"})
        dividends = await client.get("/v2/account/activities", params={"activity_types": "DIV"})

    assert (settings["cfee_delay_ms"], Decimal(settings["crypto_fee_bps"])) == ([1500, 1500], 10)
    assert refused.status_code == 422
    assert before == []
    assert position["qty"] == "0.00999"  # the fee is already taken
    assert [a["qty"] for a in after] == ["-0.00001"]
    assert unknown.status_code == 422
    assert dividends.json() == []


@pytest.mark.anyio
async def test_http_crypto_survives_the_close_and_the_clock_stays_the_equities(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"session_s": 60, "overnight_s": 3600})
        resting = (
            await client.post(
                "/v2/orders", json={**MARKET_BTC, "type": "limit", "limit_price": "55000"}
            )
        ).json()
        clock.tick(10)
        closed = (await client.post("/_sim/close_day")).json()
        market = (await client.post("/v2/orders", json=MARKET_BTC)).json()
        clock.tick(10)
        is_open = (await client.get("/v2/clock")).json()["is_open"]
        filled = (await client.get(f"/v2/orders/{market['id']}")).json()
        still = (await client.get(f"/v2/orders/{resting['id']}")).json()

    assert closed == {"expired": 0, "done_for_day": 0}
    assert is_open is False
    assert filled["status"] == "filled"
    assert still["status"] == "new"
