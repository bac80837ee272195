"""Cleanup of closed orders on a migrated database (SQLite and PostgreSQL): what moves, what
stays, bounded batches, idempotence and crash safety, and finding an archived order."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.enums import (
    BrokerKind,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from models.db import make_engine, make_sessionmaker
from models.orders import Account, ArchivedOrder, Fill, InvalidTaskCall, Order, OrderEvent
from ordersync.settings import Settings
from tests.conftest import migrated_database
from worker import purge
from worker.context import WorkerContext
from worker.purge import PurgeResult, archived_document, find_archived, purge_closed_orders

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=10)
S = OrderStatus


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def purge_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database of this module's own: purging commits, and sweeps every account."""
    for url in migrated_database(request.param, tmp_path_factory.mktemp("purge")):
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def sessions(purge_engine: Engine) -> sessionmaker[Session]:
    with purge_engine.begin() as connection:
        for model in (InvalidTaskCall, ArchivedOrder, OrderEvent, Fill, Order, Account):
            connection.execute(delete(model))
    return make_sessionmaker(purge_engine)


def _account(sessions: sessionmaker[Session], name: str) -> str:
    with sessions.begin() as session:
        account = Account(name=name, broker=BrokerKind.ALPACA, base_url="http://x",
                          credentials_env="X", created_at=OLD)  # fmt: skip
        session.add(account)
        session.flush()
        return account.id


@pytest.fixture
def account_id(sessions: sessionmaker[Session]) -> str:
    return _account(sessions, "main")


@pytest.fixture
def add_order(sessions: sessionmaker[Session], account_id: str) -> Callable[..., str]:
    counter = iter(range(1, 10_000))

    def add(
        status: OrderStatus,
        *,
        closed_at: datetime | None = OLD,
        updated_at: datetime = OLD,
        filled: str = "0",
        broker_filled: str | None = None,
        fills: tuple[tuple[str, str, str], ...] = (),
        events: int = 0,
        account: str | None = None,
    ) -> str:
        n = next(counter)
        with sessions.begin() as session:
            order = Order(
                account_id=account or account_id, broker=BrokerKind.ALPACA,
                client_order_id=f"c-{n}", broker_order_id=f"b-{n}", origin=OrderOrigin.PLACED,
                symbol="AAPL", side=Side.BUY, order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC, quantity=Decimal(10),
                limit_price=Decimal("187.123456789012345678"), status=status,
                filled_quantity=Decimal(filled),
                broker_filled_quantity=Decimal(broker_filled or filled),
                created_at=OLD - timedelta(hours=1), closed_at=closed_at, updated_at=updated_at,
            )  # fmt: skip
            for i, (quantity, price, fee) in enumerate(fills):
                order.fills.append(Fill(
                    broker_fill_id=f"f-{n}-{i}", quantity=Decimal(quantity),
                    price=Decimal(price), fee=Decimal(fee), filled_at=OLD + timedelta(seconds=i),
                    recorded_at=OLD + timedelta(seconds=i, milliseconds=5),
                    source=ReportSource.MONITOR,
                ))  # fmt: skip
            for i in range(events):
                order.events.append(OrderEvent(
                    kind="transition", from_status=S.NEW, to_status=status,
                    filled_quantity=Decimal(filled), raw_status=status.value.lower(),
                    source=ReportSource.SWEEP, detail=f"event {i}", at=OLD + timedelta(minutes=i),
                ))  # fmt: skip
            session.add(order)
            session.flush()
            return order.id

    return add


@pytest.fixture
def make_ctx(sessions: sessionmaker[Session]) -> Callable[..., WorkerContext]:
    def make(**settings: Any) -> WorkerContext:
        return WorkerContext(
            Settings(_env_file=None, **settings),
            sessions.kw["bind"], sessions, fakeredis.FakeRedis(decode_responses=True),
            None,  # type: ignore[arg-type]
            now=lambda: NOW,
        )  # fmt: skip

    return make


def _count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _order_ids(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.scalars(select(Order.id)))


def test_old_terminal_order_is_archived_whole_and_removed(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    fills = (("0.123456789012345678", "187.123456789012345678", "0.000000000000000001"),
             ("9.876543210987654322", "100", "0.35"))  # fmt: skip
    order_id = add_order(S.FILLED, filled="10", fills=fills, events=2)

    result = purge_closed_orders(make_ctx())

    assert result == PurgeResult("archive", orders=1, archived=1, fills=2, events=2, batches=1)
    assert _order_ids(sessions) == set()
    assert _count(sessions, Fill) == 0
    assert _count(sessions, OrderEvent) == 0
    with sessions() as session:
        row = session.get(ArchivedOrder, order_id)
        assert row is not None
        assert (row.status, row.closed_at, row.archived_at) == (S.FILLED, OLD, NOW)
        assert (row.client_order_id, row.symbol) == ("c-1", "AAPL")
        document = archived_document(row)
        raw = row.document
    assert raw == json.dumps(document, sort_keys=True, separators=(",", ":"))
    order = document["order"]
    assert set(order) == set(Order.__table__.columns.keys())
    assert order["id"] == order_id
    assert order["status"] == "FILLED"
    assert order["side"] == "buy"
    assert order["quantity"] == "10"
    assert order["limit_price"] == "187.123456789012345678"
    assert order["closed_at"] == "2026-11-22T12:00:00+00:00"
    assert order["submitted_at"] is None
    assert [(f["quantity"], f["price"], f["fee"]) for f in document["fills"]] == [
        ("0.123456789012345678", "187.123456789012345678", "0.000000000000000001"),
        ("9.876543210987654322", "100", "0.35"),
    ]
    assert document["fills"][0]["filled_at"] == OLD.isoformat()
    assert document["fills"][0]["source"] == "monitor"
    assert [e["detail"] for e in document["events"]] == ["event 0", "event 1"]
    assert document["events"][0]["to_status"] == "FILLED"
    assert document["events"][0]["filled_quantity"] == "10"


def test_open_young_and_fill_gap_orders_stay(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    ancient = NOW - timedelta(days=3650)
    one_fill = (("1", "10", "0"),)
    kept = {
        add_order(S.NEW, closed_at=None, updated_at=ancient),
        add_order(S.PENDING_NEW, closed_at=None, updated_at=ancient),
        add_order(
            S.PARTIALLY_FILLED, closed_at=None, updated_at=ancient, filled="1", fills=one_fill
        ),
        add_order(S.PENDING_CANCEL, closed_at=ancient, updated_at=ancient),  # open: status wins
        add_order(S.CANCELED, closed_at=YOUNG, updated_at=YOUNG),
        add_order(S.FILLED, closed_at=YOUNG, updated_at=OLD),  # closed_at wins over updated_at
        add_order(S.REJECTED, closed_at=None, updated_at=YOUNG),
        add_order(S.CANCELED, filled="1", broker_filled="2", fills=one_fill),
        add_order(S.FILLED, filled="9.5", broker_filled="10"),
    }
    purged = {
        add_order(S.EXPIRED),
        add_order(S.REJECTED, closed_at=None, updated_at=OLD),  # no closed_at: updated_at
        add_order(S.REPLACED),
        add_order(S.CANCELED, filled="2", fills=(("2", "10", "0"),)),
    }

    result = purge_closed_orders(make_ctx())

    assert (result.orders, result.archived, result.fills) == (4, 4, 1)
    assert _order_ids(sessions) == kept
    with sessions() as session:
        assert set(session.scalars(select(ArchivedOrder.id))) == purged
    assert _count(sessions, Fill) == 2  # the partially filled and the fill-gap order's


def test_retention_is_a_setting(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    young = add_order(S.FILLED, closed_at=YOUNG)
    assert purge_closed_orders(make_ctx()).orders == 0
    assert purge_closed_orders(make_ctx(retention_s=5 * 86400.0)).orders == 1
    assert young not in _order_ids(sessions)


def test_delete_mode_keeps_no_archive(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    add_order(S.FILLED, filled="10", fills=(("10", "5", "0"),), events=3)
    kept = add_order(S.NEW, closed_at=None)

    result = purge_closed_orders(make_ctx(purge_mode="delete"))

    assert result == PurgeResult("delete", orders=1, archived=0, fills=1, events=3, batches=1)
    assert _order_ids(sessions) == {kept}
    assert _count(sessions, ArchivedOrder) == 0
    assert (_count(sessions, Fill), _count(sessions, OrderEvent)) == (0, 0)


def test_batches_are_bounded_oldest_first(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    ids = [add_order(S.FILLED, closed_at=OLD - timedelta(days=d)) for d in (1, 3, 2)]
    ctx = make_ctx(purge_batch_size=2)

    first = purge_closed_orders(ctx, max_batches=1)
    assert (first.orders, first.batches, first.more) == (2, 1, True)
    assert _order_ids(sessions) == {ids[0]}  # the youngest of the three is left

    second = purge_closed_orders(ctx, max_batches=1)
    assert (second.orders, second.batches, second.more) == (1, 1, False)
    assert _order_ids(sessions) == set()


def test_a_full_last_batch_with_nothing_left_is_not_more(
    add_order: Callable[..., str], make_ctx: Callable[..., WorkerContext]
) -> None:
    add_order(S.FILLED)
    add_order(S.CANCELED, closed_at=None)
    result = purge_closed_orders(make_ctx(purge_batch_size=2), max_batches=1)
    assert (result.orders, result.more) == (2, False)


def test_default_cap_stops_a_run(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    for _ in range(purge.DEFAULT_MAX_BATCHES + 3):
        add_order(S.FILLED)
    result = purge_closed_orders(make_ctx(purge_batch_size=1))
    cap = purge.DEFAULT_MAX_BATCHES
    assert (result.orders, result.batches, result.more) == (cap, cap, True)
    assert len(_order_ids(sessions)) == 3


def test_rerun_is_a_no_op(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    order_id = add_order(S.FILLED, filled="1", fills=(("1", "3", "0"),), events=1)
    kept = add_order(S.NEW, closed_at=None)
    ctx = make_ctx()
    assert purge_closed_orders(ctx).orders == 1
    with sessions() as session:
        before = session.get(ArchivedOrder, order_id)
        assert before is not None

    assert purge_closed_orders(ctx) == PurgeResult("archive")
    assert _order_ids(sessions) == {kept}
    with sessions() as session:
        after = session.get(ArchivedOrder, order_id)
        assert after is not None
        assert (after.document, after.archived_at) == (before.document, before.archived_at)
    assert _count(sessions, ArchivedOrder) == 1


def test_crash_mid_batch_loses_and_duplicates_nothing(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    order_id = add_order(S.FILLED, filled="1", fills=(("1", "3", "0"),), events=1)
    real_delete = purge._delete

    def crash_on_orders(session: Session, statement: Any) -> int:
        if statement.table.name == "orders":
            raise RuntimeError("worker killed")
        return real_delete(session, statement)

    monkeypatch.setattr(purge, "_delete", crash_on_orders)
    with pytest.raises(RuntimeError, match="worker killed"):
        purge_closed_orders(make_ctx())
    assert _order_ids(sessions) == {order_id}
    assert (_count(sessions, Fill), _count(sessions, OrderEvent)) == (1, 1)
    assert _count(sessions, ArchivedOrder) == 0

    monkeypatch.setattr(purge, "_delete", real_delete)
    result = purge_closed_orders(make_ctx())
    assert (result.orders, result.archived, result.fills, result.events) == (1, 1, 1, 1)
    assert _count(sessions, ArchivedOrder) == 1
    with sessions() as session:
        row = find_archived(session, account_id=_account_of(session, order_id),
                            client_order_id="c-1")  # fmt: skip
        assert row is not None
        assert len(archived_document(row)["fills"]) == 1


def _account_of(session: Session, archived_id: str) -> str:
    row = session.get(ArchivedOrder, archived_id)
    assert row is not None
    return row.account_id


def test_an_existing_archive_row_is_left_as_is(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    account_id: str, make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    order_id = add_order(S.FILLED)
    with sessions.begin() as session:
        session.add(ArchivedOrder(
            id=order_id, account_id=account_id, client_order_id="c-1", broker_order_id="b-1",
            symbol="AAPL", status=S.FILLED, closed_at=OLD, archived_at=YOUNG,
            document='{"earlier":true}',
        ))  # fmt: skip

    result = purge_closed_orders(make_ctx())

    assert (result.orders, result.archived) == (1, 0)
    assert _order_ids(sessions) == set()
    with sessions() as session:
        row = session.get(ArchivedOrder, order_id)
        assert row is not None
        assert (row.document, row.archived_at) == ('{"earlier":true}', YOUNG)


def test_find_archived_by_client_or_broker_id(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    account_id: str, make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    other = _account(sessions, "other")
    order_id = add_order(S.FILLED)  # c-1 / b-1
    add_order(S.CANCELED, account=other)  # c-2 / b-2 at another account
    purge_closed_orders(make_ctx())

    with sessions() as session:
        by_client = find_archived(session, account_id=account_id, client_order_id="c-1")
        by_broker = find_archived(session, account_id=account_id, broker_order_id="b-1")
        both = find_archived(session, account_id=account_id, client_order_id="c-1",
                             broker_order_id="b-1")  # fmt: skip
        assert by_client is not None
        assert by_client.id == order_id
        assert by_broker is not None
        assert by_broker.id == order_id
        assert both is not None
        assert archived_document(both)["order"]["broker_order_id"] == "b-1"
        assert find_archived(session, account_id=account_id, client_order_id="c-2") is None
        assert find_archived(session, account_id=other, broker_order_id="b-1") is None
        assert find_archived(session, account_id=account_id, client_order_id="c-1",
                             broker_order_id="b-2") is None  # fmt: skip
        with pytest.raises(ValueError, match="client_order_id or broker_order_id"):
            find_archived(session, account_id=account_id)


def test_max_batches_must_be_positive(make_ctx: Callable[..., WorkerContext]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        purge_closed_orders(make_ctx(), max_batches=0)


def test_rows_a_writer_holds_are_skipped_on_postgresql(
    sessions: sessionmaker[Session], add_order: Callable[..., str],
    make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes writers")
    held = add_order(S.CANCELED)
    free = add_order(S.FILLED)
    with engine.connect() as writer, writer.begin():
        writer.execute(select(Order.id).where(Order.id == held).with_for_update())
        result = purge_closed_orders(make_ctx())
        assert result.orders == 1
    assert _order_ids(sessions) == {held}
    assert free not in _order_ids(sessions)


# --- what else grows: refused calls and the archive -------------------------------------------

DAY = 86400.0


def _refused_calls(sessions: sessionmaker[Session], *ages_d: float) -> None:
    with sessions.begin() as session:
        session.add_all(
            InvalidTaskCall(task_name="ordersync.place_order", task_id=f"t-{i}", error="bad",
                            arguments="{}", at=NOW - timedelta(days=age))
            for i, age in enumerate(ages_d)
        )  # fmt: skip


def _archived(sessions: sessionmaker[Session], account_id: str, *ages_d: float) -> list[str]:
    with sessions.begin() as session:
        rows = [
            ArchivedOrder(id=f"a-{i}-{age}", account_id=account_id, client_order_id=f"c-{i}",
                          symbol="AAPL", status=S.FILLED, closed_at=None,
                          archived_at=NOW - timedelta(days=age), document="{}")
            for i, age in enumerate(ages_d)
        ]  # fmt: skip
        session.add_all(rows)
        return [row.id for row in rows]


def test_refused_calls_and_archived_orders_go_after_their_retention_in_bounded_batches(
    sessions: sessionmaker[Session], account_id: str, make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    _refused_calls(sessions, 31, 45, 400, 29)  # the default retention is 30 days
    archived = _archived(sessions, account_id, 366, 500, 364)  # ... and 365 for the archive
    ctx = make_ctx(purge_batch_size=2)

    first = purge_closed_orders(ctx, max_batches=1)
    second = purge_closed_orders(ctx, max_batches=1)

    assert (first.invalid_calls, first.expired_archives) == (2, 2)
    assert (second.invalid_calls, second.expired_archives) == (1, 0)
    assert purge_closed_orders(ctx) == PurgeResult("archive")
    with sessions() as session:
        assert list(session.scalars(select(InvalidTaskCall.task_id))) == ["t-3"]
        assert list(session.scalars(select(ArchivedOrder.id))) == [archived[2]]


def test_the_retentions_of_refused_calls_and_the_archive_are_settings(
    sessions: sessionmaker[Session], account_id: str, make_ctx: Callable[..., WorkerContext],
) -> None:  # fmt: skip
    _refused_calls(sessions, 3)
    _archived(sessions, account_id, 10)
    assert purge_closed_orders(make_ctx()) == PurgeResult("archive")

    result = purge_closed_orders(
        make_ctx(invalid_calls_retention_s=2 * DAY, archive_retention_s=9 * DAY)
    )

    assert (result.invalid_calls, result.expired_archives) == (1, 1)
    assert (_count(sessions, InvalidTaskCall), _count(sessions, ArchivedOrder)) == (0, 0)


def test_retention_must_cover_the_deep_reconciliation_lookback() -> None:
    """An order purged within the lookback would be listed by the broker and adopted again."""
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, retention_s=DAY, deep_lookback_s=2 * DAY)
    message = str(refused.value)
    assert "ORDERSYNC_RETENTION_S (86400)" in message
    assert "ORDERSYNC_DEEP_LOOKBACK_S (172800)" in message
    assert Settings(_env_file=None, retention_s=2 * DAY, deep_lookback_s=2 * DAY).retention_s
    defaults = Settings(_env_file=None)
    assert (defaults.invalid_calls_retention_s, defaults.archive_retention_s) == (
        30 * DAY, 365 * DAY,
    )  # fmt: skip
