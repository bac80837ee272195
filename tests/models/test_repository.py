"""Persisting what the state machine decides, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.enums import (
    BrokerKind,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from models.ledger import Position
from models.orders import Account, Fill, Order, OrderEvent
from models.outbox import OutboxEvent
from models.repository import apply_to_order, load_state, record_applied
from models.state_machine import Verdict, local_transition
from tests.models.factories import at, fill, report


def test_money_is_exact_and_time_is_utc(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    order = make_order(quantity=Decimal("0.000000001"), limit_price=Decimal("123456789.123456789"))
    db_session.expire_all()
    loaded = db_session.get(Order, order.id)
    assert loaded is not None
    assert loaded.quantity == Decimal("0.000000001")
    assert loaded.limit_price == Decimal("123456789.123456789")
    assert loaded.created_at == at(0)
    assert loaded.created_at.utcoffset() is not None


def test_naive_datetimes_are_refused(db_session: Session, make_order: Callable[..., Order]) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        make_order(created_at=datetime(2026, 1, 1))


def test_floats_are_refused(db_session: Session, make_order: Callable[..., Order]) -> None:
    with pytest.raises(StatementError, match="take Decimal"):
        make_order(quantity=1.5)


def test_more_than_18_places_is_refused_not_rounded(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    with pytest.raises(StatementError, match="decimal places"):
        make_order(limit_price=Decimal("1.0000000000000000001"))


def test_duplicate_client_order_id_is_refused(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    make_order(client_order_id="same", broker_order_id="b-1")
    with pytest.raises(IntegrityError):
        make_order(client_order_id="same", broker_order_id="b-2")


def test_duplicate_broker_order_id_is_refused(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    make_order(client_order_id="c-a", broker_order_id="b-1")
    with pytest.raises(IntegrityError):
        make_order(client_order_id="c-b", broker_order_id="b-1")


def test_apply_records_fills_history_and_state(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    fills = (fill("f1", "4", "100.10", fee="0.01"), fill("f2", "6", "100.20"))
    applied = apply_to_order(
        db_session, order, report(OrderStatus.FILLED, "10", fills=fills), now=at(5),
        source=ReportSource.MONITOR,
    )  # fmt: skip
    db_session.flush()
    db_session.expire_all()
    loaded = db_session.get(Order, order.id)
    assert loaded is not None
    assert applied.verdict is Verdict.APPLIED
    assert loaded.status is OrderStatus.FILLED
    assert loaded.filled_quantity == Decimal(10)
    assert loaded.average_fill_price == Decimal("100.16")
    assert loaded.fees == Decimal("0.01")
    assert loaded.filled_at == at(1)
    rows = db_session.scalars(select(Fill).where(Fill.order_id == order.id)).all()
    assert sorted((f.broker_fill_id, f.quantity, f.source) for f in rows) == [
        ("f1", Decimal(4), ReportSource.MONITOR),
        ("f2", Decimal(6), ReportSource.MONITOR),
    ]
    history = db_session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
    assert [(h.from_status, h.to_status) for h in history] == [
        (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED),
        (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED),
    ]
    assert json.loads(loaded.last_report or "")["status"] == "FILLED"  # the API shows it
    assert loaded.last_report_at == at(5)
    # Replaying the same report changes nothing and adds nothing.
    again = apply_to_order(
        db_session, loaded, report(OrderStatus.FILLED, "10", fills=fills), now=at(6),
        source=ReportSource.SWEEP,
    )  # fmt: skip
    db_session.flush()
    assert again.verdict is Verdict.DUPLICATE
    assert len(db_session.scalars(select(Fill).where(Fill.order_id == order.id)).all()) == 2
    assert load_state(db_session, loaded).fill_ids == {"f1", "f2"}


def test_same_fill_twice_is_refused_by_the_database(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    for _ in range(2):
        db_session.add(
            Fill(order_id=order.id, broker_fill_id="f1", quantity=Decimal(1),
                 price=Decimal(1), filled_at=at(1), recorded_at=at(1),
                 source=ReportSource.MONITOR)
        )  # fmt: skip
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_anomaly_is_recorded_once_with_the_raw_report(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    order = make_order(status=OrderStatus.FILLED, broker_filled_quantity=Decimal(10))
    for second in (2, 3):
        applied = apply_to_order(
            db_session, order, report(OrderStatus.NEW, "10", updated=second), now=at(second),
            source=ReportSource.SWEEP,
        )  # fmt: skip
        db_session.flush()
        assert applied.verdict is Verdict.ANOMALY
    events = db_session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.kind == "anomaly")
    ).all()
    assert len(events) == 1
    assert order.anomaly_count == 1
    assert order.status is OrderStatus.FILLED
    assert '"raw_status": "new"' in (events[0].report or "")


def test_a_rejection_of_ours_gives_way_to_the_brokers_fills(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    """Rejected as never placed; the broker later shows it filled: its truth is recorded
    (status, broker id, fills, position, events) with the overturn in the history."""
    order = make_order(client_order_id="c-w", broker_order_id=None,
                       status=OrderStatus.PENDING_NEW)  # fmt: skip
    reason = "never reached the broker: 3 lookups"
    rejected = local_transition(load_state(db_session, order), OrderStatus.REJECTED, now=at(2),
                                detail=reason)  # fmt: skip
    record_applied(db_session, order, rejected, now=at(2), source=ReportSource.DEEP)
    order.last_error = reason
    db_session.flush()
    assert (order.status, order.raw_status) == (OrderStatus.REJECTED, None)

    fills = (fill("f1", "4", "100"), fill("f2", "6", "100"))
    applied = apply_to_order(db_session, order, report(OrderStatus.FILLED, "10", fills=fills),
                             now=at(9), source=ReportSource.DEEP)  # fmt: skip
    db_session.flush()
    db_session.expire_all()

    assert applied.anomalies == ()
    loaded = db_session.get(Order, order.id)
    assert loaded is not None
    assert (loaded.status, loaded.broker_order_id, loaded.raw_status) == (
        OrderStatus.FILLED, "b-1", "filled",
    )  # fmt: skip
    assert (loaded.filled_quantity, loaded.average_fill_price) == (Decimal(10), Decimal(100))
    assert (loaded.anomaly_count, loaded.last_error) == (0, None)
    assert len(db_session.scalars(select(Fill).where(Fill.order_id == order.id)).all()) == 2
    position = db_session.get(Position, (order.account_id, "AAPL"))
    assert position is not None
    assert position.quantity == Decimal(10)
    history = db_session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
    ).all()
    assert [(h.kind, h.from_status, h.to_status) for h in history] == [
        ("transition", OrderStatus.PENDING_NEW, OrderStatus.REJECTED),
        ("transition", OrderStatus.REJECTED, OrderStatus.PENDING_NEW),
        ("transition", OrderStatus.PENDING_NEW, OrderStatus.PARTIALLY_FILLED),
        ("transition", OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED),
    ]
    assert "local conclusion overturned" in (history[1].detail or "")
    assert "'filled'" in (history[1].detail or "")
    events = db_session.scalars(
        select(OutboxEvent.kind).where(OutboxEvent.order_id == order.id).order_by(OutboxEvent.id)
    ).all()
    assert list(events) == ["ORDER_REJECTED", "ORDER_ACCEPTED", "ORDER_FILLED"]


def test_concurrent_writers_are_caught_by_the_version(engine: Engine) -> None:
    with Session(engine) as setup:
        account = Account(
            name="version-test", broker=BrokerKind.ALPACA, base_url="http://x",
            credentials_env="X", created_at=at(0),
        )  # fmt: skip
        setup.add(account)
        setup.flush()
        order = Order(
            account_id=account.id, broker=BrokerKind.ALPACA, client_order_id="c-version",
            origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
            order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(1),
            status=OrderStatus.NEW, created_at=at(0), updated_at=at(0),
        )  # fmt: skip
        setup.add(order)
        setup.commit()
        order_id, account_id = order.id, account.id
    try:
        with Session(engine) as first, Session(engine) as second:
            a = first.get(Order, order_id)
            b = second.get(Order, order_id)
            assert a is not None
            assert b is not None
            a.check_count += 1
            first.commit()
            b.check_count += 1
            with pytest.raises(StaleDataError):
                second.commit()
    finally:
        with Session(engine) as cleanup:
            cleanup.execute(delete(Order).where(Order.id == order_id))
            cleanup.execute(delete(Account).where(Account.id == account_id))
            cleanup.commit()
