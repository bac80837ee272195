"""One account's stream holder, its lease and its backoff (SQLite, fakeredis, a stub
connection; the REST catch-up is replaced by a stub here, the system tests run it)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from types import TracebackType
from typing import Any

import pytest

from brokers.base import Unreadable
from brokers.errors import BrokerUnavailable
from core.enums import BrokerKind, OrderStatus, OrderType, Side, TimeInForce
from core.reports import OrderReport, StreamEvent
from models.accounts import ensure_account
from tests.worker.conftest import T0, UnitWorker
from worker import reconcile, stream
from worker.context import AccountInfo
from worker.stream import AccountStream, backoff_s, lease_name
from worker.stream_apply import Applied
from worker.stream_health import is_healthy, mark_healthy, take_suspicion


class StubStream:
    """Connects (or refuses), then yields ``events`` and ends as ``end`` says."""

    def __init__(self, refuse: bool = False, end: Exception | None = None) -> None:
        self.refuse = refuse
        self.end = end

    def __enter__(self) -> StubStream:
        if self.refuse:
            raise BrokerUnavailable("stream ws://x: refused")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        pass

    def events(self, idle_s: float) -> Iterator[None]:
        if self.end is not None:
            raise self.end
        yield None


class Caught:
    yielded = None
    requests = 0


@pytest.fixture
def holder(unit: UnitWorker, monkeypatch: pytest.MonkeyPatch) -> AccountStream:
    monkeypatch.setattr(stream, "catch_up", lambda *_: Caught())
    with unit.ctx.sessions() as session:
        account: AccountInfo = unit.ctx.account(session, id=unit.account_id)
    return AccountStream(unit.ctx, account, threading.Event(), rng=random.Random(7))


def test_failures_count_up_until_a_connection_comes_up_and_catches_up(
    holder: AccountStream,
) -> None:
    holder.connect = lambda *_: StubStream(refuse=True)  # type: ignore[assignment,return-value]
    assert holder._turn(3) == 4
    holder.connect = lambda *_: StubStream(end=BrokerUnavailable("lost"))  # type: ignore[assignment,return-value]
    assert holder._turn(3) == 1  # it had come up: the count starts again
    assert not is_healthy(holder.ctx.redis, holder.account.id)


def test_a_lease_taken_during_catch_up_is_let_go_and_the_new_holders_health_kept(
    holder: AccountStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis, account_id = holder.ctx.redis, holder.account.id

    def slow_catch_up(*_: Any) -> Caught:
        redis.set(lease_name(account_id), "someone.else")  # our lease lapsed and was taken
        mark_healthy(redis, account_id, 60)  # by a holder that is up
        reconcile._keep_alive()  # what every request of the catch-up does
        raise AssertionError("the catch-up went on without its lease")

    monkeypatch.setattr(stream, "catch_up", slow_catch_up)
    holder.connect = lambda *_: StubStream()  # type: ignore[assignment,return-value]
    assert holder._turn(2) == 0
    assert is_healthy(redis, account_id)
    assert redis.get(lease_name(account_id)) == "someone.else"


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 0.25, 0.5), (2, 0.5, 1.0), (7, 15.0, 30.0), (40, 15.0, 30.0)]
)
def test_the_backoff_doubles_to_its_cap_with_jitter(failures: int, low: float,
                                                    high: float) -> None:  # fmt: skip
    waits = [backoff_s(failures, 30.0, random.Random(seed)) for seed in range(50)]
    assert all(low <= w <= high for w in waits)
    assert len(set(waits)) > 1


def test_tradier_accounts_sharing_a_token_and_host_share_one_connection(
    unit: UnitWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env, token in (("IRA", "tok-1"), ("MARGIN", "tok-1"), ("OTHER", "tok-2"),
                       ("SANDBOX", "tok-1"), ("ALP", "tok-1")):  # fmt: skip
        monkeypatch.setenv(f"{env}_SECRET_KEY", token)
    live, sandbox = "https://api.tradier.com", "https://sandbox.tradier.com"
    with unit.ctx.sessions.begin() as session:
        for name, broker, url, env in [
            ("b-margin", BrokerKind.TRADIER, live, "MARGIN"),
            ("a-ira", BrokerKind.TRADIER, f"{live}/v1", "IRA"),
            ("c-other", BrokerKind.TRADIER, live, "OTHER"),
            ("d-sandbox", BrokerKind.TRADIER, sandbox, "SANDBOX"),
            ("e-alpaca", BrokerKind.ALPACA, "https://paper-api.alpaca.markets", "ALP"),
        ]:
            ensure_account(session, name=name, broker=broker, base_url=url,
                           credentials_env=env, rate_limit_per_min=120, now=T0)  # fmt: skip

    groups = [[a.name for a in group] for group in stream.streamed_accounts(unit.ctx)]

    # One connection for a-ira and b-margin (tok-1 at api.tradier.com), under a-ira's lease;
    # tok-1 at the sandbox, and at Alpaca, are connections of their own.
    assert sorted(groups) == [["a"], ["a-ira", "b-margin"], ["c-other"], ["d-sandbox"],
                              ["e-alpaca"]]  # fmt: skip


def _event(order_id: str, account: str | None) -> StreamEvent:
    report = OrderReport(
        broker_order_id=order_id, client_order_id=None, symbol="", side=Side.BUY,
        order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(1),
        status=OrderStatus.NEW, raw_status="open", filled_quantity=Decimal(0),
        average_fill_price=None, created_at=T0, updated_at=T0, states_terms=False,
    )  # fmt: skip
    return StreamEvent("order", report, T0, account=account)


class EventsStream(StubStream):
    def __init__(self, items: list[StreamEvent | Unreadable]) -> None:
        super().__init__()
        self.items = items

    def events(self, idle_s: float) -> Iterator[Any]:
        yield from self.items


def test_a_shared_connection_catches_each_account_up_and_applies_each_event_to_its_own(
    unit: UnitWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with unit.ctx.sessions.begin() as session:
        other = ensure_account(session, name="b", broker=BrokerKind.ALPACA, base_url="x",
                               credentials_env="X", rate_limit_per_min=200, now=T0)  # fmt: skip
        session.flush()
        accounts = [unit.ctx.account(session, id=unit.account_id), AccountInfo.of(other)]
    caught: list[str] = []
    applied: list[tuple[str, str]] = []
    monkeypatch.setattr(stream, "catch_up", lambda _ctx, account_id, _source: (
        caught.append(account_id) or Caught()))  # fmt: skip
    monkeypatch.setattr(stream, "apply_event", lambda _ctx, account_id, item, **_: (
        applied.append((account_id, item.report.broker_order_id)) or Applied(None)))  # fmt: skip
    unit.adapter = type("Adapter", (), {"lists_fills": True})()
    items: list[StreamEvent | Unreadable] = [
        _event("1", None), _event("2", "b"), _event("3", "not-carried"),
        Unreadable("garbled", "{"),
    ]  # fmt: skip
    holder = AccountStream(unit.ctx, accounts[0], threading.Event(), rng=random.Random(7),
                           sharing=(accounts[1],))  # fmt: skip
    connected: list[tuple[str, tuple[str, ...]]] = []

    def connect(account: AccountInfo, sharing: tuple[AccountInfo, ...]) -> EventsStream:
        connected.append((account.name, tuple(a.name for a in sharing)))
        return EventsStream(items)

    holder.connect = connect  # type: ignore[assignment]
    assert holder._turn(0) == 0  # the events ended: it reconnects at once
    assert connected == [("a", ("b",))]
    assert caught == [accounts[0].id, accounts[1].id]  # each caught up
    assert applied == [(accounts[0].id, "1"), (accounts[1].id, "2")]
    # The unreadable message may have been either's: each is suspected.
    assert [take_suspicion(unit.ctx.redis, a.id) for a in accounts] == [
        "an unreadable message: garbled"] * 2  # fmt: skip
