"""Crypto at Alpaca on real parts (Celery workers, the paper exchange over HTTP, SQLite,
PostgreSQL and RabbitMQ): a pair's order that names no time in force goes out good till
canceled and trades while the equity market is closed; a day order is refused before
anything is written."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.enums import OrderStatus, TimeInForce
from models.orders import Order
from tests.worker.conftest import TrackingSystem
from tests.worker.truth import settled

pytestmark = pytest.mark.integration


def test_a_crypto_order_goes_out_gtc_and_fills_while_the_market_is_closed(
    system: TrackingSystem,
) -> None:
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("BTC/USD", "60000.00")
    exchange.set_session(3600, 3600)
    exchange.close_day()
    assert exchange.clock()["is_open"] is False
    system.start_worker("w1")
    cid = f"btc-{uuid.uuid4().hex[:6]}"

    system.place(client_order_id=cid, symbol="BTC/USD", side="buy",
                 quantity="0.0125").get(timeout=60)  # fmt: skip

    exchange.wait_for(lambda: any(t["client_order_id"] == cid and t["status"] == "filled"
                                  for t in exchange.truth()))  # fmt: skip
    settled(system, [cid], 60)
    with Session(system.engine) as session:
        order = session.scalar(select(Order).where(Order.client_order_id == cid))
    assert order is not None
    assert (order.symbol, order.time_in_force) == ("BTC/USD", TimeInForce.GTC)
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, Decimal("0.0125"))
    [truth] = [t for t in exchange.truth() if t["client_order_id"] == cid]
    assert truth["time_in_force"] == "gtc"
    assert exchange.clock()["is_open"] is False  # it traded overnight


def test_a_crypto_day_order_is_refused_and_nothing_is_written(system: TrackingSystem) -> None:
    system.start_worker("w1")
    refused = system.place(client_order_id="btc-day", symbol="BTC/USD", side="buy",
                           quantity="1", time_in_force="day")  # fmt: skip
    with pytest.raises(Exception, match="time_in_force must be gtc or ioc") as raised:
        refused.get(timeout=60)
    assert not isinstance(raised.value, CeleryTimeout)
    with Session(system.engine) as session:
        assert session.scalars(select(Order)).all() == []
    assert system.exchange.truth() == []
