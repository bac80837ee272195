"""A Tradier account tracked through its account events stream, on real parts: an
``ordersync stream`` process subscribed over the paper exchange's WebSocket (a session
made over REST each time it connects), Celery workers, and the exchange's positions as
the witness. The events carry no fill and no terms: each rise of an order's cumulative
``exec_quantity`` is derived into a fill under the order's lock, named by the quantity it
reaches, so a fill seen by the stream and by a monitor is recorded once; dropped,
duplicated and reordered events and a disconnect lose nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderStatus, ReportSource
from models.accounts import ensure_account
from models.ledger import Position
from models.orders import Account, Fill, Order, OrderEvent
from tests.worker.conftest import (
    TrackingSystem,
    _wait_streaming,
    place_until_faults_drawn,
    start_streaming,
    wait_for,
)
from tests.worker.test_tradier_system import (
    ACCOUNT,
    SYMBOL,
    TOKEN,
    _tradier_account,
    _venue_position,
)
from tests.worker.truth import held

pytestmark = pytest.mark.integration


@pytest.fixture
def witness(system: TrackingSystem) -> Iterator[httpx.Client]:
    """The Tradier account (several fills per order), a worker and a stream process, the
    account's stream healthy; a client reading the account's positions."""
    system.exchange.freeze_market()
    system.exchange.set_price(SYMBOL, "200")
    system.exchange.set_faults(partial_fill_probability=1.0)
    client = _tradier_account(system)
    start_streaming(system, ACCOUNT)
    yield client
    client.close()


def _buy(system: TrackingSystem, n: int, prefix: str, account: str = ACCOUNT) -> list[str]:
    cids = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    results = [system.place(account=account, client_order_id=cid, symbol=SYMBOL, side="buy",
                            quantity="2") for cid in cids]  # fmt: skip
    for result in results:
        result.get(timeout=60)
    return cids


def _problems(system: TrackingSystem, cids: list[str]) -> list[str]:
    """Orders not FILLED with derived fills, each once, that add up to the exchange's."""
    found = []
    with Session(system.engine) as session:
        orders = {o.client_order_id: o for o in session.scalars(
            select(Order).where(Order.client_order_id.in_(cids)))}  # fmt: skip
        rows = session.execute(
            select(Order.client_order_id, Fill.broker_fill_id, Fill.quantity, Fill.price)
            .join(Fill.order).where(Order.client_order_id.in_(cids))
        ).all()  # fmt: skip
    ids = Counter((cid, fid) for cid, fid, _, _ in rows)
    for cid in cids:
        order = orders.get(cid)
        if order is None or order.status is not OrderStatus.FILLED:
            found.append(f"{cid}: {None if order is None else order.status}")
            continue
        ours = [(q, p) for c, _, q, p in rows if c == cid]
        truth = system.exchange.truth_order(_engine_id(system, order))["fills"]
        venue_notional = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in truth)
        if any(n != 1 for (c, _), n in ids.items() if c == cid):
            found.append(f"{cid}: a fill recorded twice: {ids}")
        elif sum(q for q, _ in ours) != 2 or sum(q * p for q, p in ours) != venue_notional:
            found.append(f"{cid}: fills {ours}, the exchange's {truth}")
        elif not all(fid.startswith(f"derived-{order.broker_order_id}-")
                     for (c, fid) in ids if c == cid):  # fmt: skip
            found.append(f"{cid}: fills not derived: {ids}")
    return found


def _engine_id(system: TrackingSystem, order: Order) -> str:
    tradier_id = int(str(order.broker_order_id))
    (found,) = [o for o in system.exchange.truth() if o.get("tradier", {}).get("id") == tradier_id]
    return str(found["id"])


def _settled(system: TrackingSystem, cids: list[str], timeout_s: float) -> None:
    try:
        wait_for(lambda: not _problems(system, cids), timeout_s, "every order settled")
    except AssertionError as failed:
        raise AssertionError(f"{failed}: {_problems(system, cids)}") from None


def _stream_fills(system: TrackingSystem, cids: list[str]) -> int:
    with Session(system.engine) as session:
        query = select(Fill.id).join(Fill.order).where(
            Order.client_order_id.in_(cids), Fill.source == ReportSource.STREAM)  # fmt: skip
        return len(session.scalars(query).all())


def _stream_rows(system: TrackingSystem, cids: list[str]) -> int:
    with Session(system.engine) as session:
        query = select(OrderEvent.id).join(OrderEvent.order).where(
            Order.client_order_id.in_(cids), OrderEvent.source == ReportSource.STREAM)  # fmt: skip
        return len(session.scalars(query).all())


def _anomalies(system: TrackingSystem, cids: list[str]) -> int:
    with Session(system.engine) as session:
        counts = session.scalars(select(Order.anomaly_count)
                                 .where(Order.client_order_id.in_(cids))).all()  # fmt: skip
    return sum(counts)


def test_streamed_tradier_orders_get_each_fill_derived_once(
    system: TrackingSystem, witness: httpx.Client
) -> None:
    cids = _buy(system, 4, "trs")
    _settled(system, cids, 60)
    wait_for(lambda: held(system, SYMBOL) == _venue_position(witness), 30,
             "our position equal to Tradier's")  # fmt: skip

    assert held(system, SYMBOL) == _venue_position(witness) == 4 * 2
    assert _stream_rows(system, cids) > 0  # the stream's events reached the record
    assert _stream_fills(system, cids) > 0  # and fills were derived from them
    assert _anomalies(system, cids) == 0
    tradier = system.exchange.stream_stats()["tradier"]
    assert tradier["auth"]["authorized"] >= 1
    assert tradier["messages"]["sent"] >= len(cids) * 2  # each order's events came


@pytest.mark.usefixtures("witness")
def test_dropped_duplicated_and_reordered_events_and_a_disconnect_lose_nothing(
    system: TrackingSystem,
) -> None:
    faults = {"stream_next_drop": 3, "stream_next_duplicate": 3, "stream_next_reorder": 2,
              "stream_next_disconnect": 1}  # fmt: skip
    cids = place_until_faults_drawn(system, ACCOUNT, faults,
                                    lambda n: _buy(system, 3, f"trf{n}"))  # fmt: skip
    _settled(system, cids, 120)

    stats = system.exchange.stream_stats()["tradier"]
    assert stats["messages"]["dropped"] == 3
    assert stats["messages"]["duplicated"] == 3
    assert stats["messages"]["reordered"] == 2
    assert stats["disconnects"].get("fault") == 1
    assert stats["opened"] >= 2  # the stream came back (a new session) after the disconnect
    assert _anomalies(system, cids) == 0
    assert held(system, SYMBOL) == 2 * len(cids)


def test_two_accounts_of_one_token_are_streamed_on_one_connection(system: TrackingSystem) -> None:
    """Tradier keeps one events session per token, a new one ending the last: two accounts
    of one token share one connection, and each account's events reach its own orders."""
    system.exchange.freeze_market()
    system.exchange.set_price(SYMBOL, "200")
    system.exchange.set_faults(partial_fill_probability=1.0)
    witness = _tradier_account(system)
    with Session(system.engine) as session:
        ensure_account(session, name="tr-2", broker=BrokerKind.TRADIER,
                       base_url=system.exchange.base_url, credentials_env="TR2",
                       rate_limit_per_min=120, now=datetime.now(UTC))  # fmt: skip
        session.commit()
    system.env.update({"TR2_KEY_ID": "VA55500022", "TR2_SECRET_KEY": TOKEN})
    start_streaming(system, ACCOUNT)
    _wait_streaming(system, "tr-2")

    first, second = _buy(system, 2, "one"), _buy(system, 2, "two", account="tr-2")
    _settled(system, first + second, 60)

    assert _stream_fills(system, first) > 0
    assert _stream_fills(system, second) > 0
    assert _anomalies(system, first + second) == 0
    stats = system.exchange.stream_stats()["tradier"]
    assert (len(stats["connections"]), stats["opened"]) == (1, 1)  # never a second session
    with Session(system.engine) as session:
        positions = session.execute(select(Account.name, Position.quantity)
                                    .join(Account, Account.id == Position.account_id)
                                    .where(Position.symbol == SYMBOL)).all()  # fmt: skip
    assert sorted(positions) == [(ACCOUNT, 4), ("tr-2", 4)]
    assert _venue_position(witness) == 4
    witness.close()
