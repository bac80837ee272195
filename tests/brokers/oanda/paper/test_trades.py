"""FIFO netting per instrument as OANDA's US accounts do it: a fill closes the oldest
opposite trades first (``tradesClosed``), reduces the next (``tradeReduced``) and opens a
trade with what is left (``tradeOpened``); each leg's ``realizedPL`` is in the home currency
(USD), so a USD_JPY gain in yen is divided by the USD_JPY price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.paper_exchange import PaperExchange


def _fill(api: httpx.Client, units: str, instrument: str = "EUR_USD") -> dict[str, Any]:
    order = {"type": "MARKET", "instrument": instrument, "units": units}
    fill: dict[str, Any] = api.post("/orders", json={"order": order}).json()["orderFillTransaction"]
    return fill


def test_fifo_closes_oldest_first_reduces_then_opens(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    first = _fill(api, "100")
    second = _fill(api, "200")
    p1, p2 = Decimal(first["price"]), Decimal(second["price"])
    oanda_exchange.set_price("oanda:EUR_USD", "1.09000")
    sell = _fill(api, "-150")
    p3 = Decimal(sell["price"])
    assert [(t["tradeID"], t["units"]) for t in sell["tradesClosed"]] == [(first["id"], "-100")]
    assert (sell["tradeReduced"]["tradeID"], sell["tradeReduced"]["units"]) == (second["id"], "-50")
    assert "tradeOpened" not in sell
    pl1, pl2 = (p3 - p1) * 100, (p3 - p2) * 50
    assert Decimal(sell["tradesClosed"][0]["realizedPL"]) == pl1
    assert Decimal(sell["tradeReduced"]["realizedPL"]) == pl2
    assert Decimal(sell["pl"]) == pl1 + pl2
    assert Decimal(sell["accountBalance"]) == Decimal(100_000) + pl1 + pl2
    flip = _fill(api, "-300")  # closes the 150 left, opens a 150 short
    assert [t["tradeID"] for t in flip["tradesClosed"]] == [second["id"]]
    assert flip["tradeOpened"]["units"] == "-150"
    trades = api.get("/openTrades").json()["trades"]
    assert [(t["id"], t["currentUnits"], t["initialUnits"]) for t in trades] == [
        (flip["id"], "-150", "-150")
    ]
    positions = api.get("/openPositions").json()["positions"]
    assert [(p["instrument"], p["long"]["units"], p["short"]["units"]) for p in positions] == [
        ("EUR_USD", "0", "-150")
    ]
    assert positions[0]["short"]["tradeIDs"] == [flip["id"]]


def test_usd_jpy_realized_pl_is_converted_to_usd(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    bought = _fill(api, "10000", "USD_JPY")
    oanda_exchange.set_price("oanda:USD_JPY", "151.000")
    sold = _fill(api, "-10000", "USD_JPY")
    entry, exit_ = Decimal(bought["price"]), Decimal(sold["price"])
    in_usd = ((exit_ - entry) * 10000 / Decimal("151.000")).quantize(Decimal("0.0001"))
    assert Decimal(sold["tradesClosed"][0]["realizedPL"]) == in_usd
    summary = api.get("/summary").json()["account"]
    assert summary["currency"] == "USD"
    assert Decimal(summary["balance"]) == Decimal(100_000) + in_usd
    assert api.get("/openPositions").json()["positions"] == []


def test_closed_trades_are_kept_and_listed_as_oanda_lists_them(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    """A trade closed by two fills is CLOSED with its closing transactions, close time and
    the sum of their realizedPL; open figures are gone. ``/trades`` lists OPEN by default,
    newest first, ``count`` at most and ``beforeID`` the highest id."""
    opened = _fill(api, "100")
    second = _fill(api, "50")
    oanda_exchange.set_price("oanda:EUR_USD", "1.08100")
    part = _fill(api, "-40")
    oanda_exchange.set_price("oanda:EUR_USD", "1.08200")
    rest = _fill(api, "-60")
    trade = api.get(f"/trades/{opened['id']}").json()["trade"]
    assert trade["state"] == "CLOSED"
    assert trade["currentUnits"] == "0"
    assert trade["initialUnits"] == "100"
    assert trade["closingTransactionIDs"] == [part["id"], rest["id"]]
    assert trade["closeTime"] == rest["time"]
    p0, p1, p2 = (Decimal(f["price"]) for f in (opened, part, rest))
    realized = ((p1 - p0) * 40).quantize(Decimal("0.0001")) + ((p2 - p0) * 60).quantize(
        Decimal("0.0001"))  # fmt: skip
    assert trade["realizedPL"] == f"{realized:f}"
    assert realized > 0
    assert trade["financing"] == "0.0000"
    assert Decimal(trade["averageClosePrice"]) == ((p1 * 40 + p2 * 60) / 100).quantize(
        Decimal("0.000001"))  # fmt: skip
    assert "unrealizedPL" not in trade
    assert "marginUsed" not in trade
    assert [t["id"] for t in api.get("/trades").json()["trades"]] == [second["id"]]
    listed = api.get("/trades", params={"state": "ALL", "count": "1"}).json()["trades"]
    assert [t["id"] for t in listed] == [second["id"]]
    older = api.get("/trades", params={"state": "CLOSED", "beforeID": opened["id"]}).json()
    assert [t["id"] for t in older["trades"]] == [opened["id"]]
    named = api.get("/trades", params={"state": "ALL", "ids": f"{opened['id']},{rest['id']}"})
    assert [t["id"] for t in named.json()["trades"]] == [opened["id"]]


def test_trade_requests_oanda_refuses_are_refused(api: httpx.Client) -> None:
    """An unknown trade is a 404; a state, count or ids OANDA does not take a 400."""
    missing = api.get("/trades/999")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "TRADE_DOESNT_EXIST"
    assert api.get("/trades/@nobody").status_code == 404
    for params in ({"state": "closed"}, {"count": "501"}, {"count": "0"}, {"ids": "1,x"},
                   {"beforeID": "x"}):  # fmt: skip
        assert api.get("/trades", params=params).status_code == 400, params
