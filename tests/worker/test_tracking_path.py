"""The tracking path on real parts: tasks sent by name, real worker processes, Redis, the
paper exchange over HTTP, SQLite and PostgreSQL; every result compared with the truth."""

from __future__ import annotations

import os
import random
import signal
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import redis
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.accounts import get_account
from models.orders import Order
from tests.worker.conftest import TrackingSystem, wait_for
from tests.worker.truth import mismatches

pytestmark = pytest.mark.integration
SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA"]


def _cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _truth_id(system: TrackingSystem, client_order_id: str) -> str:
    for order in system.exchange.truth():
        if order["client_order_id"] == client_order_id:
            return str(order["id"])
    raise AssertionError(f"{client_order_id} not at the exchange")


def _settled(system: TrackingSystem, cids: list[str], timeout_s: float) -> None:
    try:
        wait_for(lambda: not mismatches(system, cids), timeout_s, "orders equal to the truth")
    except AssertionError:
        problems = mismatches(system, cids)
        raise AssertionError(f"{len(problems)} mismatches, e.g. {problems[:10]}") from None


def test_200_mixed_orders_end_equal_to_the_truth(system: TrackingSystem) -> None:
    """Over 8 accounts at Alpaca's 200 requests/min each, with the exchange's faults on:
    429s, 503s, lost placement answers, FILL activities listed seconds late, orders
    sharing a timestamp, and the rare statuses (pending_new, stopped, suspended,
    calculated)."""
    accounts = system.add_accounts(8)
    system.exchange.set_faults(p_429=0.02, p_5xx=0.02, p_lose_response=0.03, timeout_s=1.5,
                               p_late_activity=0.1, p_same_timestamp=0.2, p_pending_new=0.05,
                               p_stopped=0.05, p_suspended=0.05, p_calculated=0.1)  # fmt: skip
    system.start_worker("w1", concurrency=3)
    system.start_beat()  # gaps a late activity leaves are closed by re-reads and sweeps
    rng = random.Random(20261121)
    quantities = ["1", "2", "3.5", "10", "0.25"]
    # Alpaca takes fractional shares on market orders for the day only, and shorts none
    whole = ["1", "2", "10"]
    market, resting, all_cids = [], [], []
    account_of: dict[str, str] = {}

    def send(prefix: str, **kwargs: str) -> str:
        cid = _cid(prefix)
        account = accounts[len(all_cids) % len(accounts)]
        sizes = whole if "order_type" in kwargs or kwargs["side"] == "sell" else quantities
        system.place(account=account, client_order_id=cid, symbol=rng.choice(SYMBOLS),
                     quantity=rng.choice(sizes), **kwargs)  # fmt: skip
        all_cids.append(cid)
        account_of[cid] = account
        return cid

    for _ in range(110):
        market.append(send("mkt", side=rng.choice(["buy", "sell"])))
    for _ in range(20):
        send("lmt", side="buy", order_type="limit", limit_price="5000")
        send("lmt", side="sell", order_type="limit", limit_price="0.01")
    for _ in range(30):
        resting.append(send("rest", side="buy", order_type="limit", limit_price="1.00",
                            time_in_force="gtc"))  # fmt: skip
    for _ in range(10):
        send("ioc", side="buy", order_type="limit", limit_price="1.00", time_in_force="ioc")
        send("fok", side="buy", order_type="limit", limit_price="5000", time_in_force="fok")
    assert len(all_cids) == 200

    # Resting orders: some partly filled at the exchange, then most of them canceled.
    wait_for(lambda: {o.client_order_id for o in system.orders() if o.broker_order_id}
             >= set(resting), 60, "resting orders acknowledged")  # fmt: skip
    for cid in resting[:10]:
        truth = system.exchange.truth_order(_truth_id(system, cid))
        system.exchange.force_fill(truth["id"], qty=str(Decimal(truth["qty"]) / 2))
    for cid in resting[:20]:
        system.send("cancel_order", account=account_of[cid], client_order_id=cid)

    _settled(system, all_cids, timeout_s=120)
    statuses = {o.client_order_id: o.status for o in system.orders()}
    assert {statuses[c] for c in market} == {OrderStatus.FILLED}
    assert {statuses[c] for c in resting[:10]} == {OrderStatus.CANCELED}
    assert all(o.filled_quantity > 0 for o in system.orders() if o.client_order_id in resting[:10])
    assert {statuses[c] for c in resting[20:]} == {OrderStatus.NEW}
    assert len(system.fills()) == len({f.broker_fill_id for f in system.fills()})


def test_two_workers_on_one_order_one_checks_the_other_skips(system: TrackingSystem) -> None:
    exchange = system.exchange
    exchange.freeze_market()
    placed = httpx.post(f"{exchange.base_url}/v2/orders", headers=exchange.headers, json={
        "symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "limit_price": "1.00",
        "time_in_force": "gtc", "client_order_id": "direct-1"}).json()  # fmt: skip
    with Session(system.engine) as session:
        account_id = get_account(session, "test").id
        order = Order(
            account_id=account_id, broker=BrokerKind.ALPACA, client_order_id="direct-1",
            broker_order_id=placed["id"], origin=OrderOrigin.TRACKED, symbol="AAPL",
            side=Side.BUY, order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC,
            quantity=Decimal(1), limit_price=Decimal("1.00"), status=OrderStatus.NEW,
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
        )  # fmt: skip
        session.add(order)
        session.commit()
        order_id = order.id
    exchange.set_faults(latency_ms=[1500, 1500], routes=["GET /v2/orders/"])
    r = redis.Redis.from_url(system.redis_url, decode_responses=True)
    r.hset(f"ordersync:monitor:chain:{order_id}", mapping={"token": "T", "done": -1})
    system.start_worker("w1", concurrency=1)
    system.start_worker("w2", concurrency=1)
    wait_for(lambda: system.client.control.ping(timeout=0.5) and len(
        system.client.control.ping(timeout=0.5)) == 2, 30, "two workers up")  # fmt: skip

    for _ in range(2):  # the same step delivered twice, as at-least-once delivery does
        system.send("monitor_order", order_id=order_id, chain="T", check=0)

    wait_for(lambda: int(r.get("ordersync:stats:monitor_lock_skipped") or 0) >= 1, 30,
             "a skip")  # fmt: skip
    wait_for(lambda: exchange.requests()["by_order"].get(placed["id"], 0) >= 2, 30,
             "the other worker checked the order")  # fmt: skip
    logs = system.log("w1") + system.log("w2")
    assert logs.count("is being checked by another worker") >= 1
    # never both at once: the order's requests came one after the other (1.5 s each)
    checks_by_worker = [("Task ordersync.monitor_order" in system.log(w)) for w in ("w1", "w2")]
    assert checks_by_worker == [True, True]
    r.close()


def test_worker_killed_while_monitoring_loses_nothing(system: TrackingSystem) -> None:
    system.exchange.freeze_market()
    worker = system.start_worker("victim", concurrency=2)
    system.start_beat()
    cids = [_cid("kill") for _ in range(10)]
    for cid in cids:
        system.place(client_order_id=cid, symbol="AAPL", side="buy", quantity="4",
                     order_type="limit", limit_price="1.00", time_in_force="gtc")  # fmt: skip
    wait_for(lambda: len([o for o in system.orders() if o.status is OrderStatus.NEW]) == 10,
             60, "orders working")  # fmt: skip
    system.exchange.set_faults(latency_ms=[800, 800], routes=["GET /v2/orders/"])
    wait_for(lambda: system.exchange.requests()["faulted"] > 0 or
             system.exchange.requests()["by_route"], 10, "monitoring in flight")  # fmt: skip
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    system.exchange.clear_faults()
    for cid in cids:  # everything fills while no worker runs
        system.exchange.force_fill(_truth_id(system, cid))
    system.start_worker("rescuer", concurrency=2)
    _settled(system, cids, timeout_s=90)
    assert {o.status for o in system.orders()} == {OrderStatus.FILLED}


def test_lost_placement_answer_gives_one_order_tracked(system: TrackingSystem) -> None:
    system.start_worker("w1", concurrency=2)
    system.exchange.set_faults(next_lose_response=1, timeout_s=3)
    result = system.place(client_order_id="lost-1", symbol="AAPL", side="buy", quantity="2")
    order_id = result.get(timeout=60)
    _settled(system, ["lost-1"], timeout_s=60)
    at_exchange = [o for o in system.exchange.truth() if o["client_order_id"] == "lost-1"]
    assert len(at_exchange) == 1
    assert [o.id for o in system.orders()] == [order_id]
    assert "placement answer unclear" in system.log("w1")


BAD_CALLS = [
    ({"account": "test", "side": "buy", "quantity": "1"}, "symbol: Field required"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": "0"}, "must be positive"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": "-5"}, "must be positive"),
    ({"account": "nobody", "symbol": "AAPL", "side": "buy", "quantity": "1"}, "unknown account"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": "1,5"}, "not a decimal"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": 1.5}, "not float"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": "1", "colour": "red"},
     "unknown argument 'colour'"),
    ({"account": "test", "symbol": "AAPL", "side": "buy", "quantity": "1",
      "order_type": "limit"}, "limit_price is required"),
    ({"account": "test", "symbol": "AAPL", "side": "hold", "quantity": "1"}, "side"),
]  # fmt: skip


def test_bad_calls_are_refused_recorded_and_harm_nothing(system: TrackingSystem) -> None:
    system.start_worker("w1", concurrency=2)
    bad = [(system.send("place_order", **call), reason) for call, reason in BAD_CALLS]
    good = system.place(client_order_id="good-1", symbol="MSFT", side="buy", quantity="3")
    positional = system.client.send_task("ordersync.place_order", args=["test", "AAPL"])

    for result, reason in bad:
        with pytest.raises(Exception, match=reason.replace("(", r"\(")):
            result.get(timeout=60)
    with pytest.raises(Exception, match="keyword arguments only"):
        positional.get(timeout=60)
    good.get(timeout=60)
    _settled(system, ["good-1"], timeout_s=60)

    recorded = {call.task_id: call for call in system.invalid_calls()}
    for result, reason in bad:
        assert reason.split(":")[0] in recorded[result.id].error
    assert positional.id in recorded
    assert system.count_orders() == 1  # nothing half-written
    assert "refused ordersync.place_order (task " in system.log("w1")


def test_track_order_registers_an_order_placed_elsewhere(system: TrackingSystem) -> None:
    """Seed 000: the service placed the order itself and hands over its id."""
    exchange = system.exchange
    placed = httpx.post(f"{exchange.base_url}/v2/orders", headers=exchange.headers, json={
        "symbol": "NVDA", "qty": "7", "side": "buy", "type": "market",
        "time_in_force": "day", "client_order_id": "svc-own-1"}).json()  # fmt: skip
    system.start_worker("w1", concurrency=2)
    first = system.send("track_order", account="test", broker_order_id=placed["id"],
                        intent="ENTRY", decision_id="dec-9").get(timeout=60)  # fmt: skip
    again = system.send("track_order", account="test", client_order_id="svc-own-1").get(timeout=60)
    assert again == first
    _settled(system, ["svc-own-1"], timeout_s=60)
    [order] = system.orders()
    assert (order.origin, order.intent, order.decision_id) == (
        OrderOrigin.TRACKED, "ENTRY", "dec-9",
    )  # fmt: skip


def test_bad_track_and_cancel_calls_are_refused(system: TrackingSystem) -> None:
    system.start_worker("w1", concurrency=2)
    calls = [
        ("track_order", {"account": "test"}, "give broker_order_id or client_order_id"),
        ("track_order", {"account": "test", "broker_order_id": "x", "extra": 1},
         "unknown argument 'extra'"),
        ("cancel_order", {"account": "test"}, "give order_id or client_order_id"),
        ("cancel_order", {"account": "test", "client_order_id": "never-placed"},
         "no order 'never-placed'"),
    ]  # fmt: skip
    results = [(system.send(task, **kwargs), reason) for task, kwargs, reason in calls]
    for result, reason in results:
        with pytest.raises(Exception, match=reason):
            result.get(timeout=60)
    recorded = {call.task_id for call in system.invalid_calls()}
    assert {result.id for result, _ in results} <= recorded
    assert system.count_orders() == 0
