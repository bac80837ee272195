"""Seed 003's queries against the database, on SQLite and PostgreSQL: by id and client
order id (unique per account only), active orders, recent completed ones, counts and
totals; results are plain values that outlive their session."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.enums import BrokerKind, Intent, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.accounts import UnknownAccount
from models.db import make_engine
from models.orders import Account, ArchivedOrder, Order
from models.outbox import OutboxEvent
from ordersync.queries import (
    AmbiguousClientOrderId,
    OrderView,
    Totals,
    active_orders,
    counts_by_status,
    get_order,
    get_order_by_client_id,
    recent_completed,
    totals,
)
from tests.conftest import migrated_database

D = Decimal
T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
S = OrderStatus


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _account(session: Session, name: str) -> Account:
    account = Account(name=name, broker=BrokerKind.ALPACA, base_url="http://x",
                      credentials_env="X", created_at=T0)  # fmt: skip
    session.add(account)
    session.flush()
    return account


def _order(session: Session, account: Account, cid: str, status: OrderStatus, *,
           symbol: str = "AAPL", created: float = 0, closed: float | None = None,
           **extra: Any) -> Order:  # fmt: skip
    order = Order(
        account_id=account.id, broker=BrokerKind.ALPACA, client_order_id=cid,
        broker_order_id=f"b-{account.name}-{cid}", origin=OrderOrigin.PLACED, symbol=symbol,
        side=Side.BUY, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
        quantity=D(10), status=status, created_at=at(created), updated_at=at(created),
        closed_at=None if closed is None else at(closed), **extra,
    )  # fmt: skip
    session.add(order)
    session.flush()
    return order


def _event(session: Session, order: Order, published: bool) -> None:
    session.add(OutboxEvent(kind="ORDER_PLACED", priority=7, order_id=order.id, payload="{}",
                            created_at=T0, published_at=T0 if published else None))  # fmt: skip
    session.flush()


def seed(session: Session) -> dict[str, Order]:
    """alpha: 4 open orders (2 AAPL, 1 MSFT, 1 NVDA), 6 terminal; beta: 1 open, 2 terminal;
    client id "shared" in both accounts."""
    alpha, beta = _account(session, "alpha"), _account(session, "beta")
    o: dict[str, Order] = {}
    o["a-new"] = _order(session, alpha, "a-new", S.NEW, created=3)
    o["a-pending"] = _order(session, alpha, "a-pending", S.PENDING_NEW, created=1)
    o["a-partial"] = _order(session, alpha, "a-partial", S.PARTIALLY_FILLED, symbol="MSFT",
                            created=2, filled_quantity=D("2.5"),
                            broker_filled_quantity=D("4"), fill_notional=D("250.25"),
                            average_fill_price=D("100.1"))  # fmt: skip
    o["a-cancel"] = _order(session, alpha, "a-cancel", S.PENDING_CANCEL, symbol="NVDA",
                           created=4)  # fmt: skip
    o["a-filled"] = _order(session, alpha, "a-filled", S.FILLED, created=5, closed=20,
                           filled_quantity=D(10), broker_filled_quantity=D(10),
                           fill_notional=D("1000.5"), average_fill_price=D("100.05"),
                           fees=D("0.000000000000000001"), filled_at=at(20),
                           intent=Intent.ENTRY, decision_id="dec-1", trade_id="dec-1")  # fmt: skip
    o["a-rejected"] = _order(session, alpha, "a-rejected", S.REJECTED, created=6, closed=21,
                             last_error="insufficient buying power")  # fmt: skip
    o["a-expired"] = _order(session, alpha, "a-expired", S.EXPIRED, created=7, closed=22)
    o["a-canceled"] = _order(session, alpha, "a-canceled", S.CANCELED, created=8, closed=25,
                             filled_quantity=D(3), broker_filled_quantity=D(3))  # fmt: skip
    o["a-replaced"] = _order(session, alpha, "a-replaced", S.REPLACED, created=9, closed=24)
    o["a-shared"] = _order(session, alpha, "shared", S.FILLED, created=10, closed=23)
    o["b-new"] = _order(session, beta, "b-new", S.NEW, created=0)
    o["b-shared"] = _order(session, beta, "shared", S.FILLED, created=11, closed=30)
    o["b-canceled"] = _order(session, beta, "b-canceled", S.CANCELED, created=12, closed=31)
    for key, published in (("a-new", True), ("a-new", True), ("a-filled", False),
                           ("b-new", True), ("b-shared", False)):  # fmt: skip
        _event(session, o[key], published)
    return o


def test_an_order_by_id_is_plain_values_that_outlive_the_session(db_session: Session) -> None:
    orders = seed(db_session)
    view = get_order(db_session, orders["a-filled"].id)
    assert view is not None
    assert (view.account, view.client_order_id, view.status, view.intent, view.trade_id) == (
        "alpha", "a-filled", S.FILLED, "ENTRY", "dec-1",
    )  # fmt: skip
    assert (view.quantity, view.filled_quantity, view.average_fill_price, view.fees) == (
        D(10), D(10), D("100.05"), D("0.000000000000000001"),
    )  # fmt: skip
    assert all(isinstance(v, Decimal) for v in (view.quantity, view.fees, view.fill_gap))
    assert view.closed_at == at(20)
    assert view.closed_at is not None
    assert view.closed_at.utcoffset() == timedelta(0)
    assert view.created_at.tzinfo is not None
    assert not view.is_active
    db_session.expunge_all()  # nothing of it belongs to the session
    assert view.filled_at == at(20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.status = S.CANCELED  # type: ignore[misc]
    assert get_order(db_session, "no-such-id") is None


def test_a_fill_gap_shows(db_session: Session) -> None:
    orders = seed(db_session)
    view = get_order(db_session, orders["a-partial"].id)
    assert view is not None
    assert (view.filled_quantity, view.broker_filled_quantity, view.fill_gap) == (
        D("2.5"), D(4), D("1.5"),
    )  # fmt: skip
    assert view.is_active


def test_client_order_ids_are_unique_per_account_only(db_session: Session) -> None:
    orders = seed(db_session)
    found = get_order_by_client_id(db_session, "a-rejected")
    assert found is not None
    assert (found.order_id, found.account, found.last_error) == (
        orders["a-rejected"].id, "alpha", "insufficient buying power",
    )  # fmt: skip
    in_beta = get_order_by_client_id(db_session, "shared", account="beta")
    assert in_beta is not None
    assert (in_beta.order_id, in_beta.account) == (orders["b-shared"].id, "beta")
    in_alpha = get_order_by_client_id(db_session, "shared", "alpha")
    assert in_alpha is not None
    assert in_alpha.order_id == orders["a-shared"].id
    with pytest.raises(AmbiguousClientOrderId, match="'shared' is used in 2 accounts") as error:
        get_order_by_client_id(db_session, "shared")
    assert error.value.accounts == ["alpha", "beta"]
    assert get_order_by_client_id(db_session, "a-rejected", account="beta") is None
    assert get_order_by_client_id(db_session, "never-used") is None
    with pytest.raises(UnknownAccount):
        get_order_by_client_id(db_session, "shared", account="nobody")


def _cids(views: list[OrderView]) -> list[str]:
    return [v.client_order_id for v in views]


def test_active_orders_oldest_first_by_symbol_and_account(db_session: Session) -> None:
    seed(db_session)
    assert _cids(active_orders(db_session)) == [
        "b-new", "a-pending", "a-partial", "a-new", "a-cancel",
    ]  # fmt: skip
    assert _cids(active_orders(db_session, symbol="AAPL")) == ["b-new", "a-pending", "a-new"]
    assert _cids(active_orders(db_session, account="alpha")) == [
        "a-pending", "a-partial", "a-new", "a-cancel",
    ]  # fmt: skip
    assert _cids(active_orders(db_session, "AAPL", "beta")) == ["b-new"]
    assert active_orders(db_session, symbol="TSLA") == []
    assert all(v.is_active for v in active_orders(db_session))
    with pytest.raises(UnknownAccount):
        active_orders(db_session, account="nobody")


def test_recent_completed_newest_closed_first_with_a_limit(db_session: Session) -> None:
    seed(db_session)
    assert _cids(recent_completed(db_session)) == [
        "b-canceled", "shared", "a-canceled", "a-replaced", "shared", "a-expired",
        "a-rejected", "a-filled",
    ]  # fmt: skip
    assert [(v.account, v.client_order_id) for v in recent_completed(db_session, limit=2)] == [
        ("beta", "b-canceled"), ("beta", "shared"),
    ]  # fmt: skip
    assert _cids(recent_completed(db_session, 3, account="alpha")) == [
        "a-canceled", "a-replaced", "shared",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="limit must be at least 1"):
        recent_completed(db_session, limit=0)


def test_counts_by_status_name_every_status(db_session: Session) -> None:
    seed(db_session)
    counts = counts_by_status(db_session)
    assert set(counts) == set(OrderStatus)
    assert counts == {
        S.PENDING_NEW: 1, S.NEW: 2, S.PARTIALLY_FILLED: 1, S.PENDING_CANCEL: 1, S.FILLED: 3,
        S.CANCELED: 2, S.REJECTED: 1, S.EXPIRED: 1, S.REPLACED: 1,
    }  # fmt: skip
    beta = counts_by_status(db_session, account="beta")
    assert {s: c for s, c in beta.items() if c} == {S.NEW: 1, S.FILLED: 1, S.CANCELED: 1}


def test_totals_define_failed_and_cancelled_and_count_events(db_session: Session) -> None:
    seed(db_session)
    assert totals(db_session) == Totals(
        tracked=13, active=5, filled=3, failed=2, cancelled=3, events_published=3,
        events_waiting=2,
    )  # fmt: skip
    assert totals(db_session, account="alpha") == Totals(
        tracked=10, active=4, filled=2, failed=2, cancelled=2, events_published=2,
        events_waiting=1,
    )  # fmt: skip
    with pytest.raises(UnknownAccount):
        totals(db_session, account="nobody")


def test_an_empty_database_counts_zero(db_session: Session) -> None:
    assert totals(db_session) == Totals(0, 0, 0, 0, 0, 0, 0)
    assert set(counts_by_status(db_session).values()) == {0}
    assert active_orders(db_session) == recent_completed(db_session) == []


def test_archived_orders_count_only_when_asked(db_session: Session) -> None:
    orders = seed(db_session)
    beta_id = orders["b-new"].account_id
    for i, status in enumerate((S.FILLED, S.FILLED, S.REJECTED)):
        db_session.add(ArchivedOrder(
            id=f"old-{i}", account_id=beta_id, client_order_id=f"old-{i}", symbol="AAPL",
            status=status, closed_at=at(-86400), archived_at=T0, document="{}",
        ))  # fmt: skip
    db_session.flush()
    assert totals(db_session).tracked == 13
    both = totals(db_session, include_archived=True)
    assert (both.tracked, both.filled, both.failed) == (16, 5, 3)
    assert counts_by_status(db_session, "alpha", include_archived=True)[S.FILLED] == 2
    assert counts_by_status(db_session, "beta", include_archived=True)[S.FILLED] == 3


@pytest.fixture(params=["sqlite", "postgresql"])
def committed(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A fresh migrated database with the seed committed, and an engine on it."""
    for url in migrated_database(request.param, tmp_path):
        engine = make_engine(url)
        with Session(engine) as session:
            ids = {key: order.id for key, order in seed(session).items()}
            session.commit()
        try:
            yield engine, ids
        finally:
            engine.dispose()


def test_an_engine_is_read_in_a_session_of_its_own(
    committed: tuple[Any, dict[str, str]],
) -> None:  # fmt: skip
    engine, ids = committed
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))  # fmt: skip
    view = get_order(engine, ids["a-filled"])
    assert view is not None
    assert view.fees == D("0.000000000000000001")
    assert view.created_at == at(5)
    assert not any(s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
                   for s in statements)  # fmt: skip
    assert _cids(active_orders(engine, symbol="MSFT")) == ["a-partial"]
    assert totals(engine).tracked == 13
    shared = get_order_by_client_id(engine, "shared", "beta")
    assert shared is not None
    assert shared.order_id == ids["b-shared"]
