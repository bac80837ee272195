"""Lumiwealth's Tradier client (lumiwealth-tradier, Lumibot's), unchanged but for its
sandbox URL, trading against the paper exchange's Tradier dialect: equity orders with a
tag, one order and the session's orders, positions and balances, cancels (a second one
taken as done, by Tradier's "order already in finalized state"), refusals as its error."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lumiwealth_tradier import Tradier
from lumiwealth_tradier import base as lumiwealth_base
from lumiwealth_tradier.base import TradierApiError

from tests.brokers.tradier.paper import ACCOUNT, TOKEN
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


@pytest.fixture
def client(tradier_exchange: PaperExchange, monkeypatch: pytest.MonkeyPatch) -> Tradier:
    monkeypatch.setattr(lumiwealth_base, "TRADIER_SANDBOX_URL", tradier_exchange.base_url)
    return Tradier(ACCOUNT, TOKEN, is_paper=True)


def test_an_equity_buy_is_placed_read_back_and_held(
    client: Tradier, tradier_exchange: PaperExchange
) -> None:
    placed = client.orders.order("AAPL", "buy", 10, "market", tag="lw-buy-1")
    assert placed["status"] == "ok"
    order_id = placed["id"]

    def filled() -> bool:
        return bool(client.orders.get_order(order_id)["status"].iloc[0] == "filled")

    tradier_exchange.wait_for(filled)
    (truth,) = tradier_exchange.truth()
    row = client.orders.get_order(order_id).iloc[0]
    assert (row["tag"], row["exec_quantity"]) == ("lw-buy-1", 10)
    assert Decimal(str(row["avg_fill_price"])) == Decimal(truth["filled_avg_price"])
    listed = client.orders.get_orders()
    assert listed["id"].tolist() == [order_id]
    positions = client.account.get_positions()
    assert positions[["symbol", "quantity"]].values.tolist() == [["AAPL", 10]]
    balance = client.account.get_account_balance().iloc[0]
    assert balance["account_number"] == ACCOUNT
    assert Decimal(str(balance["long_market_value"])) == Decimal(2000)  # 10 at 200


def test_an_option_is_bought_to_open_and_sold_to_close(
    client: Tradier, tradier_exchange: PaperExchange
) -> None:
    call = "AAPL300118C00200000"
    tradier_exchange.set_price(call, "1.75")
    for side, tag in (("buy_to_open", "lw-opt-in"), ("sell_to_close", "lw-opt-out")):
        placed = client.orders.order_option("AAPL", call, side, 2, "market", tag=tag)
        assert placed["status"] == "ok"

        def filled(order_id: int = placed["id"]) -> bool:
            return bool(client.orders.get_order(order_id)["status"].iloc[0] == "filled")

        tradier_exchange.wait_for(filled, interval_s=0.1)
        row = client.orders.get_order(placed["id"]).iloc[0]
        assert (row["class"], row["symbol"], row["option_symbol"], row["side"]) == (
            "option", "AAPL", call, side)  # fmt: skip
        if side == "buy_to_open":
            positions = client.account.get_positions()
            assert positions[["symbol", "quantity"]].values.tolist() == [[call, 2]]
            cost = Decimal(str(positions["cost_basis"].iloc[0]))
            assert cost == Decimal(str(row["avg_fill_price"])) * 200
    assert client.orders.get_orders()["side"].tolist() == ["buy_to_open", "sell_to_close"]


def test_cancel_twice_and_a_refusal(client: Tradier, tradier_exchange: PaperExchange) -> None:
    placed = client.orders.order("AAPL", "buy", 5, "limit", limit_price=1.0, tag="lw-limit")
    assert client.orders.cancel(placed["id"]) == {"id": placed["id"], "status": "ok"}
    assert tradier_exchange.truth()[0]["status"] == "canceled"
    # Already final: Tradier's 400 "order already in finalized state", which it takes as done.
    assert client.orders.cancel(placed["id"]) == {"id": placed["id"], "status": "ok"}
    with pytest.raises(TradierApiError, match="400"):
        client.orders.order("AAPL", "sell", 5, "market")  # nothing held
    assert client.orders.get_orders()["status"].tolist() == ["canceled"]
