"""Orders over trading sessions as a real account has them, on real parts: day orders expire
at the close (some while their cancel is on its way), partly filled GTC orders are
``done_for_day`` until the next open, orders sent while the market is closed are routed at
the open (``submitted_at`` no longer their ``created_at``, many sharing one timestamp), and
FILL activities show up late. Every order ends equal to the exchange's truth."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.worker.conftest import TrackingSystem, wait_for
from tests.worker.truth import mismatches

pytestmark = pytest.mark.integration
SESSION_S, OVERNIGHT_S = 8.0, 6.0


def cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_to_close(system: TrackingSystem) -> float:
    clock = system.exchange.clock()
    now = datetime.fromisoformat(clock["timestamp"])
    return (datetime.fromisoformat(clock["next_close"]) - now).total_seconds()


def test_orders_across_closes_and_opens_end_equal_to_the_truth(system: TrackingSystem) -> None:
    exchange = system.exchange
    accounts = system.add_accounts(4)
    exchange.set_faults(p_late_activity=0.2)
    system.start_worker("w1", concurrency=3)
    system.start_beat()
    wait_for(lambda: system.client.control.ping(timeout=0.5), 60, "the worker up")
    exchange.set_session(SESSION_S, OVERNIGHT_S)  # a session starts now
    sent: list[str] = []

    def place(n: int, prefix: str, **kwargs: str) -> str:
        order = cid(prefix)
        system.place(account=accounts[n % 4], client_order_id=order, symbol="AAPL",
                     quantity="4", **kwargs)  # fmt: skip
        sent.append(order)
        return order

    # In the session: day limits that rest, GTC limits that rest, market orders.
    day = [place(n, "day", side="buy", order_type="limit", limit_price="1.00")
           for n in range(6)]  # fmt: skip
    gtc = [place(n, "gtc", side="buy", order_type="limit", limit_price="1.00",
                 time_in_force="gtc") for n in range(4)]  # fmt: skip
    for n in range(6):
        place(n, "mkt", side="buy" if n % 2 else "sell")
    wait_for(lambda: len([o for o in system.orders() if o.broker_order_id]) == len(sent), 30,
             "the session's orders acknowledged")  # fmt: skip
    # Half the GTC orders partly filled: they are done_for_day at the close, then back.
    truth = {t["client_order_id"]: t for t in exchange.truth()}
    for order in gtc[:2]:
        exchange.force_fill(truth[order]["id"], qty=Decimal(2))
    # Cancels sent just before the close race the expiry of their day orders.
    wait_for(lambda: seconds_to_close(system) < 0.3, SESSION_S + 5, "the close near")
    for n, order in enumerate(day[:3]):
        system.send("cancel_order", account=accounts[n % 4], client_order_id=order)
    wait_for(lambda: not exchange.clock()["is_open"], 10, "the close")
    # While closed: market orders are accepted and routed at the open, all at one time.
    for n in range(6):
        place(n, "night", side="buy" if n % 2 else "sell")
    wait_for(lambda: exchange.clock()["is_open"], OVERNIGHT_S + 5, "the next open")
    opened_by = datetime.fromisoformat(exchange.clock()["timestamp"])

    def settled() -> bool:
        return not mismatches(system, sent)

    try:
        wait_for(settled, 90, "every order equal to the truth")
    except AssertionError:
        problems = mismatches(system, sent)
        raise AssertionError(f"{len(problems)} mismatches, e.g. {problems[:8]}") from None
    truth = {t["client_order_id"]: t for t in exchange.truth()}
    assert {truth[o]["status"] for o in day} <= {"expired", "canceled"}
    assert any(truth[o]["status"] == "expired" for o in day[3:])
    # Night orders the exchange got while it was closed were routed at the open, together.
    night = [truth[o] for o in sent if o.startswith("night")]
    routed = [t for t in night if at(t["created_at"]) < opened_by - timedelta(seconds=0.5)]
    assert routed
    assert len({t["submitted_at"] for t in routed}) == 1
    assert all(at(t["submitted_at"]) > at(t["created_at"]) for t in routed)
