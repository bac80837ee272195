"""OANDA's own Python library (``v20``, oanda/v20-python) against the paper exchange,
unchanged: it reads every answer into its typed models, so a field of the wrong shape fails."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import v20

from tests.brokers.oanda.paper import ACCOUNT, TOKEN
from tests.paper_exchange import PaperExchange


@pytest.fixture
def ctx(oanda_exchange: PaperExchange) -> v20.Context:
    url = urlsplit(oanda_exchange.base_url)
    return v20.Context(url.hostname, url.port, ssl=False, token=TOKEN, datetime_format="RFC3339")


def test_v20_places_reads_and_closes(ctx: v20.Context) -> None:
    summary = ctx.account.summary(ACCOUNT)
    assert summary.status == 200
    assert summary.get("account", 200).currency == "USD"
    instruments = ctx.account.instruments(ACCOUNT, instruments="EUR_USD,USD_JPY")
    names = [i.name for i in instruments.get("instruments", 200)]
    assert names == ["EUR_USD", "USD_JPY"]

    placed = ctx.order.market(ACCOUNT, instrument="EUR_USD", units=100,
                              clientExtensions={"id": "v20-1"})  # fmt: skip
    assert placed.status == 201
    fill = placed.get("orderFillTransaction", 201)
    assert fill.tradeOpened.units == 100.0
    order = ctx.order.get(ACCOUNT, "@v20-1").get("order", 200)
    assert order.state == "FILLED"
    assert order.fillingTransactionID == fill.id

    limit = ctx.order.limit(ACCOUNT, instrument="EUR_USD", units=-100, price="1.20000",
                            clientExtensions={"id": "v20-2"})  # fmt: skip
    assert limit.status == 201
    pending = ctx.order.list_pending(ACCOUNT).get("orders", 200)
    assert [o.clientExtensions.id for o in pending] == ["v20-2"]
    cancelled = ctx.order.cancel(ACCOUNT, "@v20-2")
    assert cancelled.get("orderCancelTransaction", 200).reason == "CLIENT_REQUEST"

    trades = ctx.trade.list_open(ACCOUNT).get("trades", 200)
    assert [t.currentUnits for t in trades] == [100.0]
    positions = ctx.position.list_open(ACCOUNT).get("positions", 200)
    assert [(p.instrument, p.long.units) for p in positions] == [("EUR_USD", 100.0)]

    closed = ctx.order.market(ACCOUNT, instrument="EUR_USD", units=-100)
    closing = closed.get("orderFillTransaction", 201)
    assert [t.tradeID for t in closing.tradesClosed] == [fill.id]
    assert Decimal(str(closing.pl)) == Decimal(str(closing.tradesClosed[0].realizedPL))
    since = ctx.transaction.since(ACCOUNT, id=fill.id).get("transactions", 200)
    assert [t.type for t in since][-2:] == ["MARKET_ORDER", "ORDER_FILL"]


def test_v20_sees_a_duplicate_client_id_refused(ctx: v20.Context) -> None:
    ctx.order.market(ACCOUNT, instrument="EUR_USD", units=1, clientExtensions={"id": "dup"})
    again = ctx.order.market(ACCOUNT, instrument="EUR_USD", units=1,
                             clientExtensions={"id": "dup"})  # fmt: skip
    assert again.status == 400
    assert again.get("errorCode", 400) == "CLIENT_ORDER_ID_ALREADY_EXISTS"
    assert again.get("orderRejectTransaction", 400).rejectReason == (
        "CLIENT_ORDER_ID_ALREADY_EXISTS"
    )


def test_v20_with_a_wrong_token_gets_401(oanda_exchange: PaperExchange) -> None:
    url = urlsplit(oanda_exchange.base_url)
    stranger = v20.Context(url.hostname, url.port, ssl=False, token="wrong")
    answer = stranger.account.summary(ACCOUNT)
    assert answer.status == 401
    assert answer.get("errorMessage", 401) == "Insufficient authorization to perform request."


def test_v20_reads_the_full_account_and_a_time_window(ctx: v20.Context) -> None:
    placed = ctx.order.market(ACCOUNT, instrument="USD_JPY", units=1000)
    fill = placed.get("orderFillTransaction", 201)
    account = ctx.account.get(ACCOUNT).get("account", 200)
    assert [t.id for t in account.trades] == [fill.id]
    assert [p.instrument for p in account.positions] == ["USD_JPY"]
    assert account.pendingOrderCount == 0
    window = ctx.transaction.list(ACCOUNT, fromTime="2000-01-01T00:00:00Z", type="ORDER_FILL")
    pages = window.get("pages", 200)
    assert window.get("count", 200) == 1
    assert pages[0].endswith(f"idrange?from={fill.id}&to={fill.id}&type=ORDER_FILL")
    later = ctx.transaction.list(ACCOUNT, fromTime="2999-01-01T00:00:00Z", type="ORDER_FILL")
    assert later.get("count", 200) == 0
