"""Following a replacement (SQLite, fakeredis, a stub broker): an order replaced outside
ordersync is registered from the broker's report with the replaced order's context, once,
and linked both ways; its fills parked before are taken; a cancel goes to the live order."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from core.enums import Intent, OrderOrigin, OrderStatus, ReportSource, TimeInForce
from core.reports import OrderReport
from models.orders import Fill, Order, OrderEvent
from tests.models.factories import fill
from tests.worker.conftest import UnitWorker
from tests.worker.test_replacing import ReplacingBroker, _report, placed, replace_args
from worker import replacements
from worker.args import CancelOrderArgs
from worker.cancellation import cancel_order
from worker.fills import park
from worker.replacing import replace_order
from worker.reports import apply_fills


class FollowingBroker(ReplacingBroker):
    """Also answers lookups by broker id, and records cancels."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, OrderReport] = {}

    def get_order(self, broker_order_id: str) -> OrderReport:
        self.calls.append(("get", broker_order_id))
        found = self.by_id.get(broker_order_id) or next(
            r for r in self.by_client.values() if r.broker_order_id == broker_order_id
        )
        return found

    def cancel(self, broker_order_id: str) -> None:
        self.calls.append(("cancel", broker_order_id))


def external(broker: FollowingBroker, replaces: str, broker_id: str = "ext-1") -> OrderReport:
    """A replacement someone else made at the broker (a client id we never used)."""
    report = _report(broker_id, "their-client-id", Decimal(7), TimeInForce.DAY, Decimal(99),
                     replaces=replaces)  # fmt: skip
    broker.by_id[broker_id] = report
    return report


def mark_replaced(unit: UnitWorker, order_id: str, by: str) -> None:
    """The replaced order's own report, applied as a monitor would."""
    from models.repository import apply_to_order

    replaced = dataclasses.replace(
        _report("b-old-1", "old-1", Decimal(10), TimeInForce.GTC, Decimal(100),
                OrderStatus.REPLACED), replaced_by=by, raw_status="replaced",
    )  # fmt: skip
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        apply_to_order(session, order, replaced, now=unit.clock[0], source=ReportSource.MONITOR)


def count(unit: UnitWorker, model: Any) -> int:
    with unit.ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_an_outside_replacement_is_followed_with_the_replaced_orders_context(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = FollowingBroker()
    old_id = placed(unit)
    external(broker, "b-old-1")
    mark_replaced(unit, old_id, "ext-1")
    assert unit.order(old_id).replaced_by_id is None  # not known yet: to be followed

    new_id = replacements.follow(unit.ctx, old_id, "ext-1", ReportSource.SWEEP)
    assert new_id is not None
    new = unit.order(new_id)
    assert (new.broker_order_id, new.client_order_id, new.quantity) == (
        "ext-1",
        "their-client-id",
        Decimal(7),
    )
    assert (new.intent, new.decision_id, new.trade_id, new.origin) == (
        Intent.ENTRY,
        "d-7",
        "d-7",
        OrderOrigin.PLACED,
    )  # inherited, not adopted
    assert (new.replaces_id, new.status) == (old_id, OrderStatus.NEW)
    assert unit.order(old_id).replaced_by_id == new_id
    with unit.ctx.sessions() as session:
        kinds = session.scalars(select(OrderEvent.kind).where(OrderEvent.order_id == old_id))
        assert "replaced_by" in list(kinds)

    again = replacements.follow(unit.ctx, old_id, "ext-1", ReportSource.SWEEP)
    assert again == new_id
    assert count(unit, Order) == 2


def test_registering_twice_links_the_row_already_there(unit: UnitWorker) -> None:
    unit.adapter = broker = FollowingBroker()
    old_id = placed(unit)
    report = external(broker, "b-old-1")
    first = replacements.register(unit.ctx, _account(unit), old_id, report, ReportSource.DEEP)
    second = replacements.register(unit.ctx, _account(unit), old_id, report, ReportSource.DEEP)
    assert first is not None
    assert second == first
    assert count(unit, Order) == 2


def _account(unit: UnitWorker) -> Any:
    with unit.ctx.sessions() as session:
        return unit.ctx.account(session, id=unit.account_id)


def test_fills_that_came_before_the_replacement_was_known_are_taken(unit: UnitWorker) -> None:
    unit.adapter = broker = FollowingBroker()
    old_id = placed(unit)
    external(broker, "b-old-1")
    early = [fill("ext-fill-1", "7", "99", broker_order_id="ext-1")]
    recorded, unknown = apply_fills(unit.ctx, unit.account_id, early, ReportSource.SWEEP)
    assert (recorded, unknown) == (0, early)
    park(unit.ctx, unit.account_id, unknown)  # as a fill sync does
    new_id = replacements.follow(unit.ctx, old_id, "ext-1", ReportSource.SWEEP)
    assert new_id is not None
    assert unit.order(new_id).filled_quantity == Decimal(7)
    assert count(unit, Fill) == 1


def test_a_cancel_goes_to_the_order_working_in_its_place(unit: UnitWorker) -> None:
    unit.adapter = broker = FollowingBroker()
    old_id = placed(unit)
    new_id = replace_order(unit.ctx, replace_args(old_id, limit_price="101"),
                           task_id="r-1").placed.order_id  # fmt: skip
    new_broker_id = unit.order(new_id).broker_order_id
    assert new_broker_id is not None

    waiting = cancel_order(unit.ctx, CancelOrderArgs(account="a", order_id=old_id))
    assert waiting.retry_reason == f"waiting for its replacement by order {new_id} to settle"
    assert ("cancel", "b-old-1") not in broker.calls

    mark_replaced(unit, old_id, new_broker_id)
    done = cancel_order(unit.ctx, CancelOrderArgs(account="a", order_id=old_id), attempt=1)
    assert done.order_id == new_id
    assert done.retry_reason is None
    assert broker.calls[-1] == ("cancel", new_broker_id)
    assert unit.order(new_id).status is OrderStatus.PENDING_CANCEL
    assert unit.order(old_id).status is OrderStatus.REPLACED


def test_a_cancel_of_an_order_replaced_by_one_not_known_yet_waits(unit: UnitWorker) -> None:
    unit.adapter = broker = FollowingBroker()
    old_id = placed(unit)
    external(broker, "b-old-1")
    mark_replaced(unit, old_id, "ext-1")
    result = cancel_order(unit.ctx, CancelOrderArgs(account="a", order_id=old_id))
    assert result.retry_reason == "waiting for the order that replaced it to be known"
    assert not [c for c in broker.calls if c[0] == "cancel"]


def test_our_replacement_whose_answer_was_lost_is_linked_when_the_broker_names_it(
    unit: UnitWorker,
) -> None:
    """The replaced order's report comes before our replacement has its broker id: the
    broker's report of it (our client order id) completes our row, no second row."""
    unit.adapter = FollowingBroker()
    old_id = placed(unit)
    new_id = replace_order(unit.ctx, replace_args(old_id, limit_price="101",
                                                  new_client_order_id="n-9"),
                           task_id="r-9").placed.order_id  # fmt: skip
    with unit.ctx.sessions.begin() as session:  # as if its answer never came
        row = session.get(Order, new_id)
        assert row is not None
        row.broker_order_id, row.status = None, OrderStatus.PENDING_NEW
    mark_replaced(unit, old_id, "b-n-9")
    assert replacements.follow(unit.ctx, old_id, "b-n-9", ReportSource.STREAM) == new_id
    assert unit.order(new_id).broker_order_id == "b-n-9"
    assert unit.order(old_id).replaced_by_id == new_id
    assert count(unit, Order) == 2
