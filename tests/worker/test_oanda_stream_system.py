"""An OANDA v20 account tracked through its transaction stream, on real parts: an
``ordersync stream`` process reading the paper exchange's chunked HTTP stream, Celery
workers, and the exchange's truth as the witness. Limit orders rest, then fill when the
price crosses them, so their fills come by stream, each once under its ORDER_FILL
transaction id; dropped (an id gap), duplicated and reordered transactions and a
disconnect lose nothing."""

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
from tests.worker.test_oanda_system import ACCOUNT, INSTRUMENT, _oanda_account, _venue_units

pytestmark = pytest.mark.integration
UNITS = Decimal(100)
ABOVE, LIMIT, BELOW = "1.08000", "1.07900", "1.07800"


@pytest.fixture
def witness(system: TrackingSystem) -> Iterator[httpx.Client]:
    """The OANDA account, a worker and a stream process, the account's stream healthy; a
    client on the account's /v3 to witness with."""
    system.exchange.freeze_market()
    system.exchange.set_price(f"oanda:{INSTRUMENT}", ABOVE)
    client = _oanda_account(system)
    start_streaming(system, ACCOUNT)
    yield client
    client.close()


def _rest_then_fill(system: TrackingSystem, n: int, prefix: str) -> list[str]:
    """``n`` limit buys resting below the price, then the price through them."""
    system.exchange.set_price(f"oanda:{INSTRUMENT}", ABOVE)
    cids = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    results = [system.place(account=ACCOUNT, client_order_id=cid, symbol=INSTRUMENT,
                            side="buy", quantity=str(UNITS), order_type="limit",
                            limit_price=LIMIT, time_in_force="gtc") for cid in cids]  # fmt: skip
    for result in results:
        result.get(timeout=60)
    system.exchange.set_price(f"oanda:{INSTRUMENT}", BELOW)
    return cids


def _problems(system: TrackingSystem, cids: list[str]) -> list[str]:
    """Orders not FILLED with exactly the exchange's ORDER_FILL transactions, each once."""
    found = []
    venue = {
        o["oanda"]["client_id"]: {f["id"] for f in o["oanda"]["fills"]}
        for o in system.exchange.truth()
        if "oanda" in o
    }
    with Session(system.engine) as session:
        orders = {o.client_order_id: o for o in session.scalars(
            select(Order).where(Order.client_order_id.in_(cids)))}  # fmt: skip
        rows = session.execute(
            select(Order.client_order_id, Fill.broker_fill_id)
            .join(Fill.order)
            .where(Order.client_order_id.in_(cids))
        ).all()
    fills = Counter((cid, fid) for cid, fid in rows)
    for cid in cids:
        order = orders.get(cid)
        if order is None or order.status is not OrderStatus.FILLED:
            found.append(f"{cid}: {None if order is None else order.status}")
            continue
        ours = {fid: n for (c, fid), n in fills.items() if c == cid}
        if set(ours) != venue.get(cid) or set(ours.values()) != {1}:
            found.append(f"{cid}: fills {ours}, the exchange's {venue.get(cid)}")
    return found


def _settled(system: TrackingSystem, cids: list[str], timeout_s: float) -> None:
    try:
        wait_for(lambda: not _problems(system, cids), timeout_s, "every order settled")
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {_problems(system, cids)}") from None


def _from_stream(system: TrackingSystem, cids: list[str]) -> tuple[Counter[str], int]:
    """How the orders' fills were recorded (by source), and the history rows the stream
    wrote for them."""
    with Session(system.engine) as session:
        sources = Counter(
            str(s)
            for s in session.scalars(
                select(Fill.source).join(Fill.order).where(Order.client_order_id.in_(cids))
            )
        )
        streamed = len(
            session.scalars(
                select(OrderEvent.id)
                .join(OrderEvent.order)
                .where(Order.client_order_id.in_(cids), OrderEvent.source == ReportSource.STREAM)
            ).all()
        )
    return sources, streamed


def _anomalies(system: TrackingSystem, cids: list[str]) -> int:
    with Session(system.engine) as session:
        counts = session.scalars(select(Order.anomaly_count)
                                 .where(Order.client_order_id.in_(cids))).all()  # fmt: skip
    return sum(counts)


def test_streamed_oanda_fills_are_recorded_once_under_their_transaction_ids(
    system: TrackingSystem, witness: httpx.Client
) -> None:
    cids = _rest_then_fill(system, 4, "oas")
    _settled(system, cids, 60)

    sources, streamed = _from_stream(system, cids)
    assert set(sources) == {"stream"}  # each ORDER_FILL (some orders fill in parts)
    assert sum(sources.values()) >= len(cids)
    assert streamed >= len(cids)
    assert _anomalies(system, cids) == 0
    wait_for(lambda: _venue_units(witness) == len(cids) * UNITS, 30, "OANDA's position")
    oanda = system.exchange.stream_stats()["oanda"]
    assert oanda["auth"]["authorized"] >= 1
    assert oanda["messages"]["sent"] >= len(cids) * 2  # each order's create and fill


@pytest.mark.usefixtures("witness")
def test_dropped_duplicated_and_reordered_transactions_and_a_disconnect_lose_nothing(
    system: TrackingSystem,
) -> None:
    faults = {"stream_next_drop": 3, "stream_next_duplicate": 3, "stream_next_reorder": 2,
              "stream_next_disconnect": 1}  # fmt: skip
    cids = place_until_faults_drawn(system, ACCOUNT, faults,
                                    lambda n: _rest_then_fill(system, 3, f"oaf{n}"))  # fmt: skip
    _settled(system, cids, 120)

    stats = system.exchange.stream_stats()["oanda"]
    assert stats["messages"]["dropped"] == 3
    assert stats["messages"]["duplicated"] == 3
    assert stats["messages"]["reordered"] == 2
    assert stats["disconnects"].get("fault") == 1
    assert stats["opened"] >= 2  # the stream came back after the disconnect
    assert _anomalies(system, cids) == 0
