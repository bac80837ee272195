"""A Coinbase Advanced Trade account tracked through its ``user`` channel, on real parts: an
``ordersync stream`` process subscribed over the paper exchange's user WebSocket, Celery
workers, and the exchange's truth as the witness. The channel carries no fill: each rise of
an order's cumulative quantity is a fill gap that the REST fill listing closes, so every
fill is recorded once under its entry id with its commission; dropped, duplicated and
reordered messages and a disconnect lose nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus, ReportSource
from models.orders import Fill, Order, OrderEvent
from tests.worker.conftest import (
    TrackingSystem,
    place_until_faults_drawn,
    start_streaming,
    wait_for,
)
from tests.worker.test_coinbase_system import ACCOUNT, PRODUCT, _balance, _coinbase_account

pytestmark = pytest.mark.integration
QUANTITY = Decimal("0.01")


@pytest.fixture
def witness(system: TrackingSystem) -> Iterator[httpx.Client]:
    """The Coinbase account (several fills per order), a worker and a stream process, the
    account's stream healthy; a client reading the account's balances."""
    system.exchange.freeze_market()
    system.exchange.set_price(f"coinbase:{PRODUCT}", "60000")
    system.exchange.set_faults(partial_fill_probability=1.0)
    client = _coinbase_account(system)
    start_streaming(system, ACCOUNT)
    yield client
    client.close()


def _buy(system: TrackingSystem, n: int, prefix: str) -> list[str]:
    cids = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    results = [system.place(account=ACCOUNT, client_order_id=cid, symbol=PRODUCT, side="buy",
                            quantity=str(QUANTITY)) for cid in cids]  # fmt: skip
    for result in results:
        result.get(timeout=60)
    return cids


def _problems(system: TrackingSystem, cids: list[str]) -> list[str]:
    """Orders not FILLED with exactly the exchange's fills (by entry id), each once, each
    with the exchange's commission."""
    found = []
    with Session(system.engine) as session:
        orders = {o.client_order_id: o for o in session.scalars(
            select(Order).where(Order.client_order_id.in_(cids)))}  # fmt: skip
        rows = session.execute(
            select(Order.client_order_id, Fill.broker_fill_id, Fill.fee)
            .join(Fill.order)
            .where(Order.client_order_id.in_(cids))
        ).all()
    fills = Counter((cid, fid) for cid, fid, _ in rows)
    fees = {fid: fee for _, fid, fee in rows}
    for cid in cids:
        order = orders.get(cid)
        if order is None or order.status is not OrderStatus.FILLED:
            found.append(f"{cid}: {None if order is None else order.status}")
            continue
        truth = system.exchange.truth_order(str(order.broker_order_id))["coinbase"]["fills"]
        venue = {str(f["entry_id"]): Decimal(str(f["commission"])) for f in truth}
        ours = {fid: n for (c, fid), n in fills.items() if c == cid}
        if set(ours) != set(venue) or set(ours.values()) != {1}:
            found.append(f"{cid}: fills {ours}, the exchange's {sorted(venue)}")
        elif any(fees[fid] != commission for fid, commission in venue.items()):
            found.append(f"{cid}: fees {[fees[f] for f in venue]}, the exchange's {venue}")
    return found


def _settled(system: TrackingSystem, cids: list[str], timeout_s: float) -> None:
    try:
        wait_for(lambda: not _problems(system, cids), timeout_s, "every order settled")
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {_problems(system, cids)}") from None


def _streamed(system: TrackingSystem, cids: list[str]) -> dict[str, list[str]]:
    """Each order's history rows the stream wrote (kind and status)."""
    found: dict[str, list[str]] = {cid: [] for cid in cids}
    with Session(system.engine) as session:
        rows = session.execute(select(Order.client_order_id, OrderEvent.kind,
                                      OrderEvent.to_status).join(OrderEvent.order).where(
            Order.client_order_id.in_(cids), OrderEvent.source == ReportSource.STREAM))  # fmt: skip
        for cid, kind, status in rows:
            found[cid].append(f"{kind}:{status}")
    return found


def _anomalies(system: TrackingSystem, cids: list[str]) -> int:
    with Session(system.engine) as session:
        counts = session.scalars(select(Order.anomaly_count)
                                 .where(Order.client_order_id.in_(cids))).all()  # fmt: skip
    return sum(counts)


def test_streamed_coinbase_orders_get_each_fill_once_with_its_commission(
    system: TrackingSystem, witness: httpx.Client
) -> None:
    cids = _buy(system, 5, "cbs")
    _settled(system, cids, 60)

    with Session(system.engine) as session:
        fills = list(session.scalars(select(Fill).join(Fill.order)
                                     .where(Order.client_order_id.in_(cids))))  # fmt: skip
    assert len(fills) > len(cids)  # several fills per order, each once
    assert all(f.fee > 0 for f in fills)  # Coinbase's commission, in USD
    # The stream's updates reached the record (its own history rows; the FILLED step is
    # the fills' own, recorded from the listing the stream's fill gap asked for).
    assert any(_streamed(system, cids).values())
    assert _anomalies(system, cids) == 0
    assert _balance(witness, "BTC") == len(cids) * QUANTITY
    coinbase = system.exchange.stream_stats()["coinbase"]
    assert coinbase["auth"]["authorized"] >= 1
    assert coinbase["messages"]["sent"] >= len(cids) * 2  # each order's updates came


@pytest.mark.usefixtures("witness")
def test_dropped_duplicated_and_reordered_messages_and_a_disconnect_lose_nothing(
    system: TrackingSystem,
) -> None:
    faults = {"stream_next_drop": 3, "stream_next_duplicate": 3, "stream_next_reorder": 2,
              "stream_next_disconnect": 1}  # fmt: skip
    cids = place_until_faults_drawn(system, ACCOUNT, faults,
                                    lambda n: _buy(system, 3, f"cbf{n}"))  # fmt: skip
    _settled(system, cids, 120)

    stats = system.exchange.stream_stats()["coinbase"]
    assert stats["messages"]["dropped"] == 3
    assert stats["messages"]["duplicated"] == 3
    assert stats["messages"]["reordered"] == 2
    assert stats["disconnects"].get("fault") == 1
    assert stats["opened"] >= 2  # the stream came back after the disconnect
    assert _anomalies(system, cids) == 0
