"""Replacements through real workers and the paper exchange over HTTP: ours and ones made
outside ordersync converge, each fill recorded once on the order it belongs to, the trade
intact and equal to the exchange's truth; a cancel of a replaced order reaches the order
working in its place."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.alpaca.parse import order_status
from core.enums import Intent, OrderOrigin, OrderStatus
from models.ledger import Position, Trade
from models.orders import Fill, Order
from tests.worker.conftest import ACCOUNT, TrackingSystem, wait_for

pytestmark = pytest.mark.integration
S = OrderStatus


def cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def row(system: TrackingSystem, **where: Any) -> Order | None:
    with Session(system.engine) as session:
        query = select(Order).filter_by(**where)
        return session.scalar(query)


def rows(system: TrackingSystem) -> list[Order]:
    with Session(system.engine) as session:
        return list(session.scalars(select(Order).order_by(Order.created_at)))


def fills_of(system: TrackingSystem, order_id: str) -> list[tuple[str, Decimal]]:
    with Session(system.engine) as session:
        found = session.execute(select(Fill.broker_fill_id, Fill.quantity)
                                .where(Fill.order_id == order_id)).all()  # fmt: skip
        return sorted((str(f), q) for f, q in found)


def truth_fills(system: TrackingSystem, broker_order_id: str) -> list[tuple[str, Decimal]]:
    order = system.exchange.truth_order(broker_order_id)
    return sorted((f["id"], Decimal(f["qty"])) for f in order["fills"])


def open_market(system: TrackingSystem) -> None:
    """A market that never closes, AAPL held at 200.00, and a worker."""
    system.exchange.set_session(0)
    system.exchange.freeze_market()
    system.exchange.set_price("AAPL", "200.00")
    system.start_worker("w1")


def resting_entry(system: TrackingSystem, decision: str, quantity: str = "10") -> Order:
    """A limit buy far below the market, resting at the exchange."""
    client_order_id = cid("rest")
    system.place(client_order_id=client_order_id, symbol="AAPL", side="buy", quantity=quantity,
                 order_type="limit", limit_price="100", time_in_force="gtc",
                 intent="ENTRY", decision_id=decision).get(timeout=60)  # fmt: skip
    order = wait_for(lambda: (o := row(system, client_order_id=client_order_id)) is not None
                     and o.status is S.NEW and o, 30, "the entry resting")  # fmt: skip
    assert isinstance(order, Order)
    return order


def settled_chain(system: TrackingSystem, old_id: str) -> tuple[Order, Order]:
    """The replaced order linked to its replacement, and the replacement filled."""

    def done() -> tuple[Order, Order] | None:
        old = row(system, id=old_id)
        if old is None or old.status is not S.REPLACED or old.replaced_by_id is None:
            return None
        new = row(system, id=old.replaced_by_id)
        if new is None or new.status is not S.FILLED or new.fill_gap:
            return None
        return old, new

    found = wait_for(done, 60, "the replacement linked and filled")
    assert isinstance(found, tuple)
    return found


def assert_matches_the_exchange(system: TrackingSystem, *orders: Order) -> None:
    for order in orders:
        assert order.broker_order_id is not None
        assert fills_of(system, order.id) == truth_fills(system, order.broker_order_id)
        truth = system.exchange.truth_order(order.broker_order_id)
        quantity, filled = Decimal(truth["qty"]), Decimal(truth["filled_qty"])
        assert order.status is order_status(truth["status"], quantity, filled)
        # None: its fills settled it before any report did (no broker status to show yet).
        assert order.raw_status in (truth["status"], None)


def test_our_replacement_takes_the_orders_place_with_every_fill_once(
    system: TrackingSystem,
) -> None:
    open_market(system)
    old = resting_entry(system, "d-ours")
    assert old.broker_order_id is not None
    system.exchange.force_fill(old.broker_order_id, qty="4", price="100")  # fills before
    # The quantity left is what ordersync knows when the call is handled: wait for it.
    wait_for(lambda: fills_of(system, old.id), 30, "the old order's own fill recorded")

    new_id = system.send("replace_order", account=ACCOUNT, order_id=old.id,
                         limit_price="250").get(timeout=60)  # fmt: skip
    old, new = settled_chain(system, old.id)
    assert new.id == new_id
    assert (new.replaces_id, new.quantity, new.limit_price) == (old.id, Decimal(6),
                                                                Decimal(250))  # fmt: skip
    assert (new.intent, new.decision_id, new.trade_id) == (Intent.ENTRY, "d-ours", "d-ours")
    assert_matches_the_exchange(system, row(system, id=old.id), new)  # type: ignore[arg-type]
    assert row(system, id=old.id).filled_quantity == Decimal(4)  # type: ignore[union-attr]

    with Session(system.engine) as session:
        trade = session.get(Trade, (old.account_id, "d-ours"))
        position = session.scalar(select(Position.quantity).where(Position.symbol == "AAPL"))
    assert trade is not None
    assert (trade.entry_quantity, trade.exit_quantity) == (Decimal(10), Decimal(0))
    assert position == Decimal(10)
    assert [o.origin for o in rows(system)] == [OrderOrigin.PLACED, OrderOrigin.PLACED]


def test_a_replacement_made_outside_is_followed_not_adopted(system: TrackingSystem) -> None:
    open_market(system)
    system.start_beat()
    old = resting_entry(system, "d-theirs", quantity="5")
    answer = httpx.patch(f"{system.exchange.base_url}/v2/orders/{old.broker_order_id}",
                         json={"limit_price": "250", "qty": "5"},
                         headers=system.exchange.headers, timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text
    their_id = answer.json()["id"]

    old, new = settled_chain(system, old.id)
    assert (new.broker_order_id, new.replaces_id) == (their_id, old.id)
    assert (new.intent, new.decision_id, new.trade_id, new.origin) == (
        Intent.ENTRY, "d-theirs", "d-theirs", OrderOrigin.PLACED)  # fmt: skip
    assert_matches_the_exchange(system, new)
    assert len(rows(system)) == 2  # no stranger adopted beside it
    with Session(system.engine) as session:
        trade = session.get(Trade, (old.account_id, "d-theirs"))
    assert trade is not None
    assert trade.entry_quantity == Decimal(5)


def test_a_cancel_of_a_replaced_order_reaches_the_one_working_in_its_place(
    system: TrackingSystem,
) -> None:
    open_market(system)
    old = resting_entry(system, "d-cancel")
    new_id = system.send("replace_order", account=ACCOUNT, order_id=old.id,
                         limit_price="101").get(timeout=60)  # fmt: skip
    wait_for(lambda: (o := row(system, id=old.id)) is not None and o.replaced_by_id == new_id,
             30, "the replaced order linked")  # fmt: skip

    cancelled = system.send("cancel_order", account=ACCOUNT, order_id=old.id).get(timeout=60)
    assert cancelled == new_id
    wait_for(lambda: (o := row(system, id=new_id)) is not None and o.status is S.CANCELED,
             30, "the replacement canceled")  # fmt: skip
    new = row(system, id=new_id)
    assert new is not None
    assert system.exchange.truth_order(str(new.broker_order_id))["status"] == "canceled"
    assert row(system, id=old.id).status is S.REPLACED  # type: ignore[union-attr]


def test_a_fill_that_beats_the_replace_stands_and_the_replacement_is_rejected(
    system: TrackingSystem,
) -> None:
    open_market(system)
    old = resting_entry(system, "d-race")
    assert old.broker_order_id is not None
    system.exchange.set_faults(ack_delay_ms=[1500, 1500])  # the replacement is slow to land
    new_id = system.send("replace_order", account=ACCOUNT, order_id=old.id,
                         limit_price="150").get(timeout=60)  # fmt: skip
    system.exchange.force_fill(old.broker_order_id, price="100")  # the whole order, first

    def settled() -> bool:
        before, after = row(system, id=old.id), row(system, id=new_id)
        return bool(before and after and before.status is S.FILLED and not before.fill_gap
                    and after.status is S.REJECTED)  # fmt: skip

    wait_for(settled, 60, "the old order filled and its replacement rejected")
    before, after = row(system, id=old.id), row(system, id=new_id)
    assert before is not None
    assert after is not None
    assert (before.replaced_by_id, after.replaces_id) == (None, old.id)
    assert_matches_the_exchange(system, before, after)
    assert fills_of(system, after.id) == []
    with Session(system.engine) as session:
        trade = session.get(Trade, (old.account_id, "d-race"))
    assert trade is not None
    assert trade.entry_quantity == Decimal(10)
