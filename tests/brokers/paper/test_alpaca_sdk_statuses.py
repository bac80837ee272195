"""alpaca-py reads the rare statuses and their stream events as the paper exchange makes
them: its models take every one (pydantic refuses a status it does not know)."""

from __future__ import annotations

import queue
import threading

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
HOLD_MS = [3_600_000, 3_600_000]  # the rare status lasts the test


@pytest.fixture
def client(paper_exchange: PaperExchange) -> TradingClient:
    return TradingClient(
        paper_exchange.key_id, paper_exchange.secret_key, url_override=paper_exchange.base_url
    )


def _limit(client: TradingClient, cid: str) -> Order:
    order = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        limit_price=1, client_order_id=cid,
    ))  # fmt: skip
    assert isinstance(order, Order)
    return order


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("p_pending_new", OrderStatus.PENDING_NEW),
        ("p_accepted_for_bidding", OrderStatus.ACCEPTED_FOR_BIDDING),
        ("p_pending_review", OrderStatus.PENDING_REVIEW),
        ("p_suspended", OrderStatus.SUSPENDED),
    ],
)
def test_sdk_reads_an_order_in_each_rare_working_status(
    client: TradingClient, paper_exchange: PaperExchange, fault: str, status: OrderStatus
) -> None:
    paper_exchange.set_faults(**{fault: 1.0}, rare_status_ms=HOLD_MS)
    order = _limit(client, f"sdk-{fault}")
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == status)


def test_sdk_reads_a_calculated_order_as_all_filled(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.set_faults(p_calculated=1.0, rare_status_ms=[50, 50])
    order = client.submit_order(MarketOrderRequest(
        symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
    ))  # fmt: skip
    assert isinstance(order, Order)

    def calculated() -> Order | None:
        found = client.get_order_by_id(order.id)
        assert isinstance(found, Order)
        return found if found.status == OrderStatus.CALCULATED else None

    seen = paper_exchange.wait_for(calculated)
    assert str(seen.filled_qty) == "2"
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.FILLED)


def test_sdk_stream_hears_pending_new_and_stopped(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    updates: queue.Queue[TradeUpdate] = queue.Queue()

    async def on_update(update: TradeUpdate) -> None:
        updates.put(update)

    stream = TradingStream(paper_exchange.key_id, paper_exchange.secret_key,
                           url_override=paper_exchange.stream_url)  # fmt: skip
    stream.subscribe_trade_updates(on_update)
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    try:
        paper_exchange.wait_listening()
        paper_exchange.set_faults(p_pending_new=1.0, p_stopped=1.0, rare_status_ms=[20, 20])
        order = client.submit_order(MarketOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        ))  # fmt: skip
        assert isinstance(order, Order)
        seen: list[str] = []

        def heard_the_fill() -> bool:
            while not updates.empty():
                update = updates.get_nowait()
                if update.order.id == order.id:
                    seen.append(str(getattr(update.event, "value", update.event)))
            return "fill" in seen

        paper_exchange.wait_for(heard_the_fill)
        assert seen == ["pending_new", "new", "stopped", "fill"]
    finally:
        stream.stop()
        runner.join(timeout=10)
