"""A monitor step holds the order's lock while it works; a slow broker or a long fill sync
must not let the lock expire under it (a second worker would then check the same order).
SQLite, fakeredis (with its Lua), a stub broker that lets "time pass" on the lock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport, Page
from models.orders import Fill
from tests.worker.conftest import UnitWorker
from worker import chains
from worker.budget import _SEND_BY
from worker.locks import order_lock_name
from worker.monitoring import LOCK_LOST_KEY, LOCKED_RETRY_S, delay_for, run_step, start_chain
from worker.stream_health import mark_healthy, mark_unhealthy

NEARLY_EXPIRED_MS = 2000  # as if most of the lock's TTL had gone by during the call


class SlowBroker:
    """The order filled in three fills, reported a page each; every call takes "long":
    it leaves the lock nearly expired, and records how much was left when it began."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    lists_by_symbol = False  # lists the whole account's fills
    lists_fills = True

    def __init__(self, unit: UnitWorker, order_id: str) -> None:
        self.redis = unit.ctx.redis
        self.lock = order_lock_name(order_id)
        self.ttl_at_call: list[tuple[str, int]] = []
        self.now = unit.clock[0]

    def _call(self, name: str) -> None:
        self.ttl_at_call.append((name, int(self.redis.pttl(self.lock))))
        self.redis.pexpire(self.lock, NEARLY_EXPIRED_MS)

    def get_order(self, broker_order_id: str) -> OrderReport:
        self._call("get_order")
        return OrderReport(
            broker_order_id=broker_order_id, client_order_id="c-slow", symbol="AAPL",
            side=Side.BUY, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
            quantity=Decimal(3), status=OrderStatus.FILLED, raw_status="filled",
            filled_quantity=Decimal(3), average_fill_price=Decimal(10),
            created_at=self.now - timedelta(seconds=1), updated_at=self.now,
        )  # fmt: skip

    def list_fills(self, *, page_token: str | None = None, **_: Any) -> Page[FillReport]:
        self._call("list_fills")
        n = int(page_token or 0) + 1
        fill = FillReport(f"f{n}", "b-slow", "AAPL", Side.BUY, Decimal(1), Decimal(10), self.now)
        return Page((fill,), next_token=str(n) if n < 3 else None)

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id[1:]


@pytest.mark.parametrize(
    ("shared", "calls"),
    [(True, ["list_fills"] * 3), (False, ["get_order"] + ["list_fills"] * 3)],
)
def test_the_order_lock_is_renewed_after_each_broker_call(
    unit: UnitWorker, shared: bool, calls: list[str]
) -> None:
    """With shared checks a market order settles through the account's fill listing alone;
    without, it is looked up first."""
    unit.ctx.settings = unit.ctx.settings.model_copy(update={"monitor_shared_checks": shared})
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW,
                              order_type=OrderType.MARKET, quantity="3")  # fmt: skip
    unit.adapter = broker = SlowBroker(unit, order_id)
    token = start_chain(unit.ctx, order_id)

    outcome = run_step(unit.ctx, order_id, token, 0)

    assert outcome.delay_s is None, outcome  # terminal, every fill recorded
    order = unit.order(order_id)
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, Decimal(3))
    ttl_s = unit.ctx.settings.order_lock_ttl_s
    assert [name for name, _ in broker.ttl_at_call] == calls
    # Every call after the first found the lock renewed to its full TTL, not nearly expired.
    assert all(left > NEARLY_EXPIRED_MS for _, left in broker.ttl_at_call), broker.ttl_at_call
    assert all(left > ttl_s * 1000 * 0.9 for _, left in broker.ttl_at_call)
    assert not unit.ctx.redis.exists(broker.lock)  # released at the end of the step


class FillessBroker(SlowBroker):
    """The same order at a broker with no executions endpoint."""

    lists_fills = False

    def list_fills(self, **_: Any) -> Page[FillReport]:
        raise AssertionError("this broker lists no fills")


def test_a_monitor_derives_the_fill_a_broker_without_a_fill_listing_implies(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW,
                              order_type=OrderType.MARKET, quantity="3")  # fmt: skip
    unit.adapter = FillessBroker(unit, order_id)
    token = start_chain(unit.ctx, order_id)

    outcome = run_step(unit.ctx, order_id, token, 0)

    assert outcome.delay_s is None, outcome
    order = unit.order(order_id)
    assert (order.status, order.filled_quantity, order.fill_gap) == (
        OrderStatus.FILLED, Decimal(3), Decimal(0)
    )  # fmt: skip
    with unit.ctx.sessions() as session:
        fills = session.scalars(select(Fill).where(Fill.order_id == order_id)).all()
        assert [(f.broker_fill_id, f.quantity, f.price) for f in fills] == [
            ("derived-b-slow-3", Decimal(3), Decimal(10))
        ]


class StolenLockBroker(SlowBroker):
    """Another worker takes the order lock while the first page of fills is fetched."""

    def list_fills(self, *, page_token: str | None = None, **kw: Any) -> Page[FillReport]:
        page = super().list_fills(page_token=page_token, **kw)
        self.redis.set(self.lock, "someone-else")
        return page


def test_a_step_that_loses_its_lock_stops_there_and_runs_again(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW,
                              order_type=OrderType.MARKET, quantity="3")  # fmt: skip
    unit.adapter = broker = StolenLockBroker(unit, order_id)
    token = start_chain(unit.ctx, order_id)

    step = run_step(unit.ctx, order_id, token, 0)

    assert (step.reason, step.same_step) == ("lock lost", True)
    assert [name for name, _ in broker.ttl_at_call] == ["list_fills"]  # no more after it
    assert unit.ctx.redis.get(order_lock_name(order_id)) == "someone-else"  # not released
    assert unit.ctx.redis.get(LOCK_LOST_KEY) == "1"
    # the account's request for fills is kept for the next sync
    assert unit.ctx.redis.exists(f"ordersync:fills:dirty:{unit.account_id}")


def test_a_step_sends_nothing_after_half_its_lock(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW)
    bounds: list[float | None] = []

    class Recording(SlowBroker):
        def get_order(self, broker_order_id: str) -> OrderReport:
            bounds.append(_SEND_BY.get())
            return super().get_order(broker_order_id)

    unit.adapter = Recording(unit, order_id)
    run_step(unit.ctx, order_id, start_chain(unit.ctx, order_id), 0)
    half = unit.ctx.settings.order_lock_ttl_s / 2
    assert bounds == [(unit.clock[0] + timedelta(seconds=half)).timestamp()]


def test_a_finished_step_delivered_again_is_dropped_and_one_hash_per_chain(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    token = start_chain(unit.ctx, order_id)
    unit.ctx.redis.hset(chains.chain_key(order_id), "done", 4)  # steps 0-4 ran
    assert run_step(unit.ctx, order_id, token, 3).reason == "duplicate delivery"
    assert run_step(unit.ctx, order_id, "old-token", 5).reason == "superseded"
    unit.ctx.redis.set(order_lock_name(order_id), "another-worker", px=30_000)
    locked = run_step(unit.ctx, order_id, token, 5)
    assert (locked.reason, locked.same_step) == ("locked", True)
    assert locked.delay_s == max(delay_for(unit.ctx, 5), LOCKED_RETRY_S)
    keys = [k for k in unit.ctx.redis.keys("ordersync:monitor:*") if order_id in k]
    assert keys == [chains.chain_key(order_id)]


def test_revive_takes_overdue_chains_once_per_overdue_period(unit: UnitWorker) -> None:
    ctx = unit.ctx
    now = float(ctx.redis.time()[0])
    overdue = ctx.settings.monitor_revive_overdue_s
    ctx.redis.zadd(chains.DUE_KEY, {"dead": now - overdue - 5, "fine": now + 1})
    assert chains.take_overdue(ctx, 100) == ["dead"]
    assert chains.take_overdue(ctx, 100) == []  # pushed ahead: not revived again at once
    score = ctx.redis.zscore(chains.DUE_KEY, "dead")
    assert score is not None
    assert score > now + overdue


def test_revive_waits_out_the_lag_checks_run_with(unit: UnitWorker) -> None:
    """Workers hold countdown messages in memory, where no queue depth shows a backlog:
    checks running late raise the bar a chain must be overdue by."""
    ctx = unit.ctx
    now = float(ctx.redis.time()[0])
    overdue = ctx.settings.monitor_revive_overdue_s
    ctx.redis.zadd(chains.DUE_KEY, {"busy": now - overdue - 5})
    chains.note_lag(ctx, (unit.clock[0] - timedelta(seconds=20)).isoformat())
    assert chains.lag_s(ctx) == 20
    assert chains.take_overdue(ctx, 100) == []  # 15 s late is nothing when checks lag 20 s
    chains.note_lag(ctx, unit.clock[0].isoformat())
    assert chains.take_overdue(ctx, 100) == ["busy"]


def test_a_step_keeps_its_chain_alive_however_slow_it_is(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    token = start_chain(unit.ctx, order_id)
    unit.ctx.redis.expire(chains.chain_key(order_id), 5)  # nearly gone after slow steps
    chains.step_done(unit.ctx, order_id, token, 0, 30.0)
    assert unit.ctx.redis.ttl(chains.chain_key(order_id)) > chains.chain_ttl_s(unit.ctx)


@pytest.mark.parametrize(
    ("order_type", "quiet_s", "wait_s"),
    [(OrderType.MARKET, 0.5, 1.5), (OrderType.LIMIT, 5.0, 10.0)],
)
def test_while_the_stream_is_healthy_a_step_waits_for_news_instead_of_asking(
    unit: UnitWorker, order_type: OrderType, quiet_s: float, wait_s: float
) -> None:
    """Market orders are given ``stream_stall_s`` (2 s) of quiet, resting ones
    ``stream_safety_check_s`` (15 s); then a step asks the broker as ever."""
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW,
                              order_type=order_type, quantity="3")  # fmt: skip
    unit.adapter = broker = SlowBroker(unit, order_id)
    mark_healthy(unit.ctx.redis, unit.account_id, 60)
    unit.clock[0] += timedelta(seconds=quiet_s)  # since the order was written

    quiet = run_step(unit.ctx, order_id, start_chain(unit.ctx, order_id), 0)
    assert (quiet.delay_s, quiet.reason) == (pytest.approx(wait_s), "stream healthy")
    assert broker.ttl_at_call == []

    unit.clock[0] += timedelta(seconds=wait_s)
    asked = run_step(unit.ctx, order_id, start_chain(unit.ctx, order_id), 0)
    assert asked.reason != "stream healthy"
    assert broker.ttl_at_call


def test_without_a_healthy_stream_a_step_asks_at_once(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-slow", broker_order_id="b-slow", status=OrderStatus.NEW,
                              order_type=OrderType.LIMIT, quantity="3")  # fmt: skip
    unit.adapter = broker = SlowBroker(unit, order_id)
    mark_healthy(unit.ctx.redis, unit.account_id, 60)
    mark_unhealthy(unit.ctx.redis, unit.account_id)
    run_step(unit.ctx, order_id, start_chain(unit.ctx, order_id), 0)
    assert [name for name, _ in broker.ttl_at_call][:1] == ["get_order"]
