"""Fill recovery that does not depend on the Redis cursor: the cursor and parked fills live
in the database, and a gap the forward sync leaves (a fill that sorts below the cursor, or
became visible late) is closed by re-reading the order's window, a bounded number of times,
then alerted once (fakeredis, SQLite, a stub activity listing)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport, Page
from models.fill_sync import FillCursor, ParkedFill
from models.orders import Fill, Order
from tests.worker.conftest import UnitWorker
from worker import fills, gaps, purge
from worker.context import WorkerContext
from worker.gaps import Gap
from worker.monitoring import Snapshot, check_order

T0 = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)


class Listing:
    """An activity listing ordered by id, as Alpaca's: ``after``/``until`` on the fill
    time, ``page_token`` on the id; a fill is listed only once ``visible``."""

    lists_by_symbol = False  # lists the whole account's fills

    def __init__(self) -> None:
        self.fills: list[tuple[FillReport, bool]] = []
        self.calls: list[dict[str, Any]] = []
        self.order: OrderReport | None = None

    def add(self, fill: FillReport, visible: bool = True) -> None:
        self.fills.append((fill, visible))
        self.fills.sort(key=lambda pair: pair[0].broker_fill_id)

    def show(self, fill_id: str) -> None:
        self.fills = [(f, v or f.broker_fill_id == fill_id) for f, v in self.fills]

    def list_fills(self, *, after: datetime | None = None, until: datetime | None = None,
                   page_token: str | None = None, **_: Any) -> Page[FillReport]:  # fmt: skip
        self.calls.append({"after": after, "until": until, "page_token": page_token})
        items = [f for f, visible in self.fills if visible
                 and (after is None or f.filled_at > after)
                 and (until is None or f.filled_at < until)
                 and (page_token is None or f.broker_fill_id > page_token)]  # fmt: skip
        page = tuple(items[:2])
        return Page(page, next_token=page[-1].broker_fill_id if len(items) > 2 else None)

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id

    lists_fills = True

    def get_order(self, broker_order_id: str) -> OrderReport:
        self.calls.append({"get": broker_order_id})
        assert self.order is not None
        return self.order


def fill(fill_id: str, at: datetime, order: str = "b-1", qty: str = "1") -> FillReport:
    return FillReport(fill_id, order, "AAPL", Side.BUY, Decimal(qty), Decimal("10"), at)


@pytest.fixture
def world(unit: UnitWorker) -> tuple[WorkerContext, Listing, str, list[datetime]]:
    """The ``unit`` worker with a listing as its broker and short re-read limits."""
    unit.ctx.settings = unit.ctx.settings.model_copy(
        update={"fill_gap_max_rereads": 3, "fill_gap_reread_delay_s": 2}
    )
    unit.clock[0] = T0 + timedelta(minutes=10)
    unit.adapter = listing = Listing()
    return unit.ctx, listing, unit.account_id, unit.clock


def add_order(ctx: WorkerContext, account_id: str, broker_id: str = "b-1",
              broker_filled: str = "2") -> str:  # fmt: skip
    with ctx.sessions.begin() as session:
        order = Order(
            account_id=account_id, broker=BrokerKind.ALPACA, client_order_id=f"c-{broker_id}",
            broker_order_id=broker_id, origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
            order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(2),
            status=OrderStatus.FILLED, broker_filled_quantity=Decimal(broker_filled),
            created_at=T0, updated_at=T0, broker_updated_at=T0 + timedelta(seconds=2),
        )  # fmt: skip
        session.add(order)
        session.flush()
        return order.id


def recorded(ctx: WorkerContext) -> list[str]:
    with ctx.sessions() as session:
        return sorted(session.scalars(select(Fill.broker_fill_id)))


def test_the_cursor_and_parked_fills_survive_losing_redis(world: Any) -> None:
    ctx, listing, account_id, _ = world
    listing.add(fill("20261121110000100::a", T0, order="b-unknown"))
    fills.sync_now(ctx, account_id)
    ctx.redis.flushall()  # Redis restarted without persistence
    with ctx.sessions() as session:
        assert session.get(FillCursor, (account_id, "")) is not None
        assert session.scalar(select(ParkedFill.broker_fill_id)) == "20261121110000100::a"
    listing.calls.clear()
    fills.sync_now(ctx, account_id)
    assert listing.calls[0]["page_token"] == "20261121110000100::a"  # not from the start
    order_id = add_order(ctx, account_id, "b-unknown", broker_filled="1")
    assert fills.adopt_parked(ctx, account_id, "b-unknown") == 1
    assert recorded(ctx) == ["20261121110000100::a"]
    assert order_id


def test_a_cursor_kept_in_redis_by_an_earlier_version_is_taken_over(world: Any) -> None:
    ctx, listing, account_id, _ = world
    ctx.redis.set(f"ordersync:fills:cursor:{account_id}", "20261121110000000::z")
    fills.sync_now(ctx, account_id)
    assert listing.calls[0]["page_token"] == "20261121110000000::z"


def test_a_fill_that_sorts_below_the_cursor_is_recovered_by_re_reading_the_order_window(
    world: Any,
) -> None:
    ctx, listing, account_id, _ = world
    order_id = add_order(ctx, account_id)
    # Two fills in one millisecond: the later-arriving one has the smaller uuid, and became
    # visible only after the cursor had passed the other.
    listing.add(fill("20261121110000500::f", T0 + timedelta(seconds=1)))
    listing.add(fill("20261121110000500::0", T0 + timedelta(seconds=1)), visible=False)
    fills.sync_now(ctx, account_id)
    assert recorded(ctx) == ["20261121110000500::f"]
    listing.show("20261121110000500::0")
    fills.sync_now(ctx, account_id)  # the forward cursor is past it: never shown again
    assert recorded(ctx) == ["20261121110000500::f"]

    assert gaps.close_gap(ctx, order_id) is Gap.CLOSED
    assert recorded(ctx) == ["20261121110000500::0", "20261121110000500::f"]
    window = listing.calls[-1]
    assert window["after"] == T0 - fills.WINDOW_MARGIN
    assert window["until"] == T0 + timedelta(seconds=2) + fills.WINDOW_MARGIN


def test_a_gap_nothing_explains_is_re_read_a_bounded_number_of_times_then_alerted_once(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, listing, account_id, clock = world
    order_id = add_order(ctx, account_id)
    listing.add(fill("20261121110000500::a", T0 + timedelta(seconds=1)))  # 1 of 2 ever shows
    fills.sync_now(ctx, account_id)
    outcomes = []
    with caplog.at_level(logging.WARNING, logger="ordersync.alerts"):
        for _ in range(6):
            outcomes.append(gaps.close_gap(ctx, order_id))
            clock[0] += timedelta(seconds=1)
    assert outcomes == [Gap.REREAD, Gap.WAITING, Gap.REREAD, Gap.WAITING, Gap.WAITING,
                        Gap.WAITING]  # 2 s, then 4 s between re-reads  # fmt: skip
    clock[0] += timedelta(seconds=10)
    assert gaps.close_gap(ctx, order_id) is Gap.GIVEN_UP
    rereads = len([c for c in listing.calls if c["until"] is not None])
    clock[0] += timedelta(minutes=5)
    assert gaps.close_gap(ctx, order_id) is Gap.GIVEN_UP
    assert len([c for c in listing.calls if c["until"] is not None]) == rereads == 3
    alerts = [r for r in caplog.records if "ALERT fill_gap" in r.getMessage()]
    assert len(alerts) == 1
    assert order_id in alerts[0].getMessage()


def test_a_monitor_step_re_reads_instead_of_polling_the_cursor_forever(world: Any) -> None:
    """The chain ends once the gap is given up: never an endless drain of the budget."""
    ctx, listing, account_id, clock = world
    order_id = add_order(ctx, account_id)
    listing.add(fill("20261121110000500::a", T0 + timedelta(seconds=1)))
    snapshot = Snapshot(account_id, "b-1", "c-b-1", "AAPL", complete=False, terminal=True)
    delays = []
    for check in range(20):
        step = check_order(ctx, order_id, snapshot, check)
        if step.delay_s is None:
            break
        delays.append(step.delay_s)
        clock[0] += timedelta(seconds=step.delay_s)
    assert step.reason == "fill gap given up (alerted)"
    assert len(listing.calls) <= 1 + 3  # one forward sync, three re-reads
    assert min(delays) >= 0.1


def test_a_closed_gap_forgets_its_count_so_a_later_one_starts_afresh(world: Any) -> None:
    ctx, listing, account_id, _ = world
    order_id = add_order(ctx, account_id)
    listing.add(fill("20261121110000500::a", T0 + timedelta(seconds=1)))
    fills.sync_now(ctx, account_id)
    assert gaps.close_gap(ctx, order_id) is Gap.REREAD
    listing.add(fill("20261121110000400::b", T0 + timedelta(seconds=1)))  # shows up
    world[3][0] = T0 + timedelta(hours=1)
    assert gaps.close_gap(ctx, order_id) is Gap.CLOSED
    assert not ctx.redis.exists(fills.gap_key(order_id))


def test_fills_parked_by_an_earlier_version_in_redis_are_adopted(world: Any) -> None:
    ctx, _, account_id, _ = world
    order_id = add_order(ctx, account_id, "b-old", broker_filled="1")
    parked = fills.fill_to_json(fill("20261121110000100::old", T0, order="b-old"))
    ctx.redis.hset(f"ordersync:fills:parked:{account_id}:b-old", "x", json.dumps(parked))
    assert fills.adopt_parked(ctx, account_id, "b-old") == 1
    assert recorded(ctx) == ["20261121110000100::old"]
    assert not ctx.redis.exists(f"ordersync:fills:parked:{account_id}:b-old")
    assert order_id


def test_purge_removes_fills_parked_for_an_order_never_known(world: Any) -> None:
    ctx, listing, account_id, clock = world
    listing.add(fill("20261121110000100::z", T0, order="b-never"))
    fills.sync_now(ctx, account_id)
    clock[0] += timedelta(seconds=ctx.settings.retention_s + 60)
    assert purge.purge_closed_orders(ctx).parked_fills == 1
    with ctx.sessions() as session:
        assert session.scalar(select(ParkedFill.id)) is None
