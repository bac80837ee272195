"""One account's stream holder, its lease and its backoff (SQLite, fakeredis, a stub
connection; the REST catch-up is replaced by a stub here, the system tests run it)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest

from brokers.errors import BrokerUnavailable
from core.enums import BrokerKind
from tests.worker.conftest import UnitWorker
from worker import reconcile, stream
from worker.context import AccountInfo
from worker.stream import AccountStream, backoff_s, lease_name
from worker.stream_health import is_healthy, mark_healthy


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
    holder.connect = lambda _: StubStream(refuse=True)  # type: ignore[assignment,return-value]
    assert holder._turn(3) == 4
    holder.connect = lambda _: StubStream(end=BrokerUnavailable("lost"))  # type: ignore[assignment,return-value]
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
    holder.connect = lambda _: StubStream()  # type: ignore[assignment,return-value]
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


def test_of_tradier_accounts_sharing_a_token_only_the_first_by_name_is_streamed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def account(name: str, broker: BrokerKind, env: str) -> AccountInfo:
        return AccountInfo(name, name, broker, "https://api.tradier.com", env, True, 120)

    for env, token in (("IRA", "tok-1"), ("MARGIN", "tok-1"), ("OTHER", "tok-2")):
        monkeypatch.setenv(f"{env}_SECRET_KEY", token)
    accounts = [account("a-ira", BrokerKind.TRADIER, "IRA"),
                account("b-margin", BrokerKind.TRADIER, "MARGIN"),
                account("c-other", BrokerKind.TRADIER, "OTHER"),
                account("d-alpaca", BrokerKind.ALPACA, "IRA")]  # fmt: skip

    kept = stream.one_session_per_token(accounts)
    stream.one_session_per_token(accounts)  # said once

    assert [a.name for a in kept] == ["a-ira", "c-other", "d-alpaca"]
    said = [r.getMessage() for r in caplog.records if "shares its Tradier token" in r.getMessage()]
    assert len(said) == 1
    assert ("b-margin" in said[0], "a-ira" in said[0], "tok-1" in said[0]) == (True, True, False)
