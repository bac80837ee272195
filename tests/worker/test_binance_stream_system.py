"""A Binance Spot account tracked through its user data stream, on real parts: an
``ordersync stream`` process subscribed over the paper exchange's WebSocket API, Celery
workers, and Binance's connector as the witness. Fills come by stream, each once under the
trade id ``myTrades`` gives it, with its commission where Binance took it; dropped,
duplicated and reordered messages and disconnects lose nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

import pytest
from binance.spot import Spot
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from models.fees import FeePosting
from models.orders import Fill, Order
from tests.worker.conftest import (
    TrackingSystem,
    place_until_faults_drawn,
    start_streaming,
    wait_for,
)
from tests.worker.test_binance_system import ACCOUNT, SYMBOL, _balance, _binance_account, _position

pytestmark = pytest.mark.integration
QUANTITY = Decimal("0.01")


def _streaming(system: TrackingSystem) -> Spot:
    """The Binance account, a worker and a stream process, the account's stream healthy."""
    system.exchange.freeze_market()
    system.exchange.set_price(f"binance:{SYMBOL}", "60000")
    spot = _binance_account(system)
    start_streaming(system, ACCOUNT)
    return spot


def _buy(system: TrackingSystem, n: int, prefix: str, **terms: str) -> list[str]:
    cids = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    results = [system.place(account=ACCOUNT, client_order_id=cid, symbol=SYMBOL, side="buy",
                            quantity=str(QUANTITY), **terms) for cid in cids]  # fmt: skip
    for result in results:
        result.get(timeout=60)
    return cids


def _settled(system: TrackingSystem, spot: Spot, cids: list[str], timeout_s: float) -> None:
    """Every order FILLED with exactly the exchange's trades recorded, each once."""

    def problems() -> list[str]:
        found = []
        with Session(system.engine) as session:
            orders = {o.client_order_id: o for o in session.scalars(
                select(Order).where(Order.client_order_id.in_(cids)))}  # fmt: skip
            pairs = select(Order.client_order_id, Fill.broker_fill_id).join(Fill.order)
            fills = Counter(session.execute(pairs.where(Order.client_order_id.in_(cids))).all())
        for cid in cids:
            order = orders.get(cid)
            if order is None or order.status is not OrderStatus.FILLED:
                found.append(f"{cid}: {None if order is None else order.status}")
                continue
            native = int(str(order.broker_order_id).split(":")[1])
            venue = {f"{SYMBOL}:{t['id']}" for t in spot.my_trades(SYMBOL, orderId=native)}
            ours = {fid: n for (c, fid), n in fills.items() if c == cid}
            if set(ours) != venue or set(ours.values()) != {1}:
                found.append(f"{cid}: fills {ours}, the exchange's {sorted(venue)}")
        return found

    try:
        wait_for(lambda: not problems(), timeout_s, "every order settled")
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {problems()}") from None


def _sources(system: TrackingSystem, cids: list[str]) -> Counter[str]:
    with Session(system.engine) as session:
        rows = session.scalars(select(Fill.source).join(Fill.order)
                               .where(Order.client_order_id.in_(cids)))  # fmt: skip
        return Counter(str(source) for source in rows)


def test_streamed_binance_fills_are_recorded_once_with_their_commissions(
    system: TrackingSystem,
) -> None:
    spot = _streaming(system)
    # Resting first, so the fills come after the placement's answer (a FULL answer carries
    # the fills of an order that filled at once, and may be read before the stream's).
    cids = _buy(system, 6, "bns", order_type="limit", limit_price="59000", time_in_force="gtc")
    system.exchange.set_price(f"binance:{SYMBOL}", "58900")
    _settled(system, spot, cids, 60)
    wait_for(lambda: _position(system) == _balance(spot, "BTC"), 30, "position = BTC held")

    with Session(system.engine) as session:
        fills = list(session.scalars(select(Fill).join(Fill.order)
                                     .where(Order.client_order_id.in_(cids))))  # fmt: skip
        postings = sorted(p.quantity for p in session.scalars(select(FeePosting)))
    venue = [t for t in spot.my_trades(SYMBOL) if t["commissionAsset"] == "BTC"]
    assert set(_sources(system, cids)) == {"stream"}
    # A buy's commission is BTC out of what it bought: no money fee, a posting per fill.
    assert {f.fee for f in fills} == {Decimal(0)}
    assert postings == sorted(Decimal(t["commission"]) for t in venue)
    assert _position(system) == len(cids) * QUANTITY - sum(postings, Decimal(0))
    assert system.exchange.stream_stats()["binance"]["auth"]["authorized"] >= 1


def test_dropped_duplicated_and_reordered_messages_and_disconnects_lose_nothing(
    system: TrackingSystem,
) -> None:
    spot = _streaming(system)
    faults = {"stream_next_drop": 3, "stream_next_duplicate": 3, "stream_next_reorder": 2,
              "stream_next_disconnect": 1}  # fmt: skip
    cids = place_until_faults_drawn(system, ACCOUNT, faults,
                                    lambda n: _buy(system, 4, f"bnf{n}"))  # fmt: skip
    _settled(system, spot, cids, 120)

    stats = system.exchange.stream_stats()["binance"]
    with Session(system.engine) as session:
        anomalies = session.scalars(select(Order.anomaly_count)
                                    .where(Order.client_order_id.in_(cids))).all()  # fmt: skip
    assert stats["messages"]["dropped"] == 3
    assert stats["messages"]["duplicated"] == 3
    assert stats["messages"]["reordered"] == 2
    assert stats["disconnects"].get("fault") == 1
    assert sum(anomalies) == 0
