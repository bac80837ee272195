"""One account's trades, positions and events: pages after an id and the live stream of
server-sent events, each showing the account's own rows only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.reports import FeeReport
from models.api_keys import ApiKey
from models.fees import record_fee
from models.outbox import EventKind
from tests.api.conftest import ApiWorld
from tests.api.fixtures import (
    add_outbox_event,
    closed_trade,
    held_event,
    make_order,
    open_trade,
    postgresql_only,
)

DASH = "\u2013"
BASE = "/api/v1/accounts"


def get(api: ApiWorld, path: str, account: str = "alpha") -> Any:
    answer = api.client.get(f"{BASE}/{account}/{path}", headers=api.auth(account))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_trades_newest_first_with_the_open_or_closed_filter(api: ApiWorld) -> None:
    entry, _ = closed_trade(api, "alpha", "t-closed")
    open_entry = open_trade(api, "alpha", "t-open")
    closed_trade(api, "beta", "t-beta")

    trades = get(api, "trades")
    assert [t["trade_id"] for t in trades] == ["t-open", "t-closed"]
    assert [t["trade_id"] for t in get(api, "trades?status=all")] == ["t-open", "t-closed"]
    assert [t["trade_id"] for t in get(api, "trades?status=open")] == ["t-open"]
    assert [t["trade_id"] for t in get(api, "trades?status=closed")] == ["t-closed"]
    assert [t["trade_id"] for t in get(api, "trades?limit=1")] == ["t-open"]

    opened, closed = trades
    assert (opened["account"], opened["symbol"], opened["side"], opened["status"]) == (
        "alpha", "MSFT", "buy", "OPEN")  # fmt: skip
    assert (opened["entry_order_id"], opened["open_quantity"], opened["realized_pnl"]) == (
        open_entry, "4", None)  # fmt: skip
    assert opened["closed_at"] is None
    assert opened["lifecycle"] == f"Trade OPEN {DASH} long 4"
    assert (closed["entry_order_id"], closed["status"], closed["realized_pnl"]) == (
        entry, "CLOSED", "99")  # fmt: skip
    assert closed["closed_at"] == "2026-12-01T14:31:00Z"
    assert [t["trade_id"] for t in get(api, "trades", account="beta")] == ["t-beta"]


def test_positions_by_symbol(api: ApiWorld) -> None:
    assert get(api, "positions") == []
    closed_trade(api, "alpha", "t-closed")  # AAPL: in at 100, out at 110, flat
    open_trade(api, "alpha", "t-open")  # MSFT: 4 at 50
    open_trade(api, "beta", "t-beta", symbol="NVDA")

    positions = get(api, "positions")
    assert [(p["account"], p["symbol"], p["quantity"]) for p in positions] == [
        ("alpha", "AAPL", "0"), ("alpha", "MSFT", "4")]  # fmt: skip
    aapl, msft = positions
    assert (aapl["average_cost"], aapl["realized_pnl"], aapl["fees"]) == (None, "99", "1")
    assert (msft["average_cost"], msft["realized_pnl"], msft["fees"]) == ("50", "-0.5", "0.5")
    assert [p["symbol"] for p in get(api, "positions", account="beta")] == ["NVDA"]


def test_fees_posted_apart_from_the_fills_newest_first(api: ApiWorld) -> None:
    """A coin fee names the trade it came out of; a cash fee names no symbol."""
    assert get(api, "fees") == []
    open_trade(api, "alpha", "t-open", symbol="BTC/USD")  # 4 at 50
    with Session(api.engine) as session:
        record_fee(session, api.account_ids["alpha"], FeeReport(
            "20261201000000000::coin", "BTC/USD", Decimal("0.01"), Decimal(50), Decimal("0.5"),
            "USD", datetime(2026, 12, 1, 20, tzinfo=UTC), "Coin Pair Transaction Fee (Non USD)",
        ), now=datetime(2026, 12, 1, 20, 1, tzinfo=UTC))  # fmt: skip
        record_fee(session, api.account_ids["beta"], FeeReport(
            "20261201000000000::cash", None, None, None, Decimal("0.37"), "USD",
            datetime(2026, 12, 1, 21, tzinfo=UTC)), now=datetime(2026, 12, 1, 21, tzinfo=UTC),
        )  # fmt: skip
        session.commit()
    [coin] = get(api, "fees")
    assert (coin["symbol"], coin["quantity"], coin["amount"]) == ("BTC/USD", "0.01", "0.5")
    assert coin["trades"] == [["t-open", "0.01"]]
    assert coin["posted_at"] == "2026-12-01T20:00:00Z"
    [cash] = get(api, "fees", account="beta")
    assert (cash["symbol"], cash["quantity"], cash["amount"]) == (None, None, "0.37")
    assert get(api, "positions")[0]["quantity"] == "3.99"


def events_world(api: ApiWorld) -> tuple[list[int], list[int]]:
    """Events of both accounts' orders, interleaved: (alpha's ids, beta's ids)."""
    a1, a2 = make_order(api, "alpha", "a-1"), make_order(api, "alpha", "a-2")
    b1 = make_order(api, "beta", "b-1")
    alpha, beta = [], []
    for n in range(3):
        alpha.append(add_outbox_event(api, a1 if n % 2 else a2, n=n))
        beta.append(add_outbox_event(api, b1, EventKind.ORDER_FILLED, n=n))
    alpha.append(add_outbox_event(api, a1, EventKind.ORDER_CANCELLED, n=3))
    add_outbox_event(api, None, EventKind.ORDER_ERROR)  # no order: nobody's but the admin's
    return alpha, beta


def test_events_after_an_id_are_the_accounts_own_in_id_order(api: ApiWorld) -> None:
    alpha, beta = events_world(api)

    page = get(api, "events")
    assert [e["id"] for e in page["items"]] == alpha
    assert page["next_after"] >= alpha[-1]
    first = page["items"][0]
    assert set(first) == {"id", "event_id", "kind", "order_id", "trade_id", "created_at", "data"}
    assert (first["kind"], first["data"]["n"]) == ("ORDER_ACCEPTED", 0)
    assert len({e["event_id"] for e in page["items"]}) == len(alpha)

    seen, after = [], 0
    while True:
        page = get(api, f"events?after={after}&limit=2")
        if not page["items"]:
            assert page["next_after"] >= after
            break
        seen += [e["id"] for e in page["items"]]
        after = page["next_after"]
    assert seen == alpha
    assert [e["id"] for e in get(api, f"events?after={alpha[1]}")["items"]] == alpha[2:]
    assert [e["id"] for e in get(api, "events", account="beta")["items"]] == beta


# --- the live stream -------------------------------------------------------------------------


class Stream:
    """One open stream's lines, read once, as frames or raw lines."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200
        self.lines = response.iter_lines()

    def frames(self) -> Iterator[dict[str, Any]]:
        """Each server-sent event as {"id", "event", "data"}; comments and ``retry`` skipped."""
        fields: dict[str, Any] = {}
        for line in self.lines:
            if not line:
                if "data" in fields:
                    yield {**fields, "id": int(fields["id"]), "data": json.loads(fields["data"])}
                fields = {}
            elif not line.startswith((":", "retry:")):
                name, _, value = line.partition(": ")
                fields[name] = value

    def read_until(self, ids: list[int], timeout_s: float = 20) -> list[int]:
        """Event ids read until ``ids`` have all arrived (the stream polls every 0.25 s and
        comments every 15 s, so each line comes well within the deadline)."""
        deadline = time.monotonic() + timeout_s
        got: list[int] = []
        for frame in self.frames():
            got.append(frame["id"])
            assert frame["data"]["id"] == frame["id"]
            assert frame["event"] == frame["data"]["kind"]
            if set(ids) <= set(got):
                return got
            assert time.monotonic() < deadline, f"only {got} of {ids} within {timeout_s} s"
        raise AssertionError(f"the stream ended after {got}")


def test_the_stream_sends_the_accounts_events_then_new_ones_live(api: ApiWorld) -> None:
    alpha, _ = events_world(api)
    url = f"{BASE}/alpha/events/stream?after=0"
    with api.client.stream("GET", url, headers=api.auth("alpha")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = Stream(response)
        assert stream.read_until(alpha) == alpha
        # Committed while the stream is open: sent within a poll.
        order = make_order(api, "alpha", "a-live")
        add_outbox_event(api, make_order(api, "beta", "b-live"))
        live = add_outbox_event(api, order, EventKind.ORDER_FILLED)
        assert stream.read_until([live]) == [live]


def test_the_stream_resumes_after_the_last_event_id(api: ApiWorld) -> None:
    alpha, _ = events_world(api)
    url = f"{BASE}/alpha/events/stream"
    # A reconnecting browser's Last-Event-ID wins over the URL's after.
    headers = {**api.auth("alpha"), "Last-Event-ID": str(alpha[1])}
    with api.client.stream("GET", f"{url}?after=0", headers=headers) as response:
        assert Stream(response).read_until(alpha[2:]) == alpha[2:]
    with api.client.stream("GET", f"{url}?after={alpha[2]}", headers=api.auth("alpha")) as response:
        assert Stream(response).read_until(alpha[3:]) == alpha[3:]


def test_the_stream_without_a_start_sends_only_new_events(api: ApiWorld) -> None:
    alpha, _ = events_world(api)
    with api.client.stream("GET", f"{BASE}/alpha/events/stream",
                           headers=api.auth("alpha")) as response:  # fmt: skip
        stream = Stream(response)
        assert next(stream.lines) == "retry: 2000"
        # The stream starts after the newest event of all (the unowned one above), and says
        # so as an id (where a client reconnecting before any event resumes).
        start = int(next(stream.lines).removeprefix("id: "))
        assert start > alpha[-1]
        assert next(stream.lines) == f": events after {start}"
        new = add_outbox_event(api, make_order(api, "alpha", "a-new"))
        assert stream.read_until([new]) == [new]


# --- events that commit out of id order ------------------------------------------------------


def test_a_page_never_passes_an_event_that_may_still_commit(api: ApiWorld) -> None:
    postgresql_only(api)
    order = make_order(api, "alpha", "a-gap")
    with held_event(api, order) as commit:
        later = add_outbox_event(api, order, EventKind.ORDER_FILLED)
        # The held event's writer is still open: the page stops before its id, after
        # waiting a moment for it.
        page = api.client.get(f"{BASE}/alpha/events?after=0", headers=api.auth("alpha")).json()
        assert page["items"] == []
        assert page["next_after"] < later - 1
        commit()
    page = get(api, f"events?after={page['next_after']}")
    assert [e["data"].get("held") for e in page["items"]] == [True, None]
    assert page["items"][1]["id"] == later


def test_a_rolled_back_id_is_passed_once_its_writer_has_ended(api: ApiWorld) -> None:
    order = make_order(api, "alpha", "a-rolled")
    with held_event(api, order):
        pass  # closed without a commit: its id is a gap for good
    later = add_outbox_event(api, order, EventKind.ORDER_FILLED)
    page = get(api, "events?after=0")
    assert [e["id"] for e in page["items"]] == [later]
    assert page["next_after"] == later


def test_the_stream_sends_an_event_that_committed_after_a_later_one(api: ApiWorld) -> None:
    postgresql_only(api)
    order = make_order(api, "alpha", "a-stream-gap")
    url = f"{BASE}/alpha/events/stream"
    with api.client.stream("GET", url, headers=api.auth("alpha")) as response:
        stream = Stream(response)
        assert next(stream.lines) == "retry: 2000"  # the stream has its start: now
        with held_event(api, order) as commit:
            later = add_outbox_event(api, order, EventKind.ORDER_FILLED)
            commit()  # after the later one: a reader that had passed its id misses it
        assert stream.read_until([later - 1, later]) == [later - 1, later]


def test_a_stream_from_now_still_sends_an_earlier_id_that_commits_later(api: ApiWorld) -> None:
    postgresql_only(api)
    order = make_order(api, "alpha", "a-open-gap")
    url = f"{BASE}/alpha/events/stream"
    with held_event(api, order) as commit:
        visible = add_outbox_event(api, order, EventKind.ORDER_FILLED)
        with api.client.stream("GET", url, headers=api.auth("alpha")) as response:
            stream = Stream(response)
            assert next(stream.lines) == "retry: 2000"  # the stream has begun
            commit()  # after the stream began: news to it, though its id is lower
            later = add_outbox_event(api, order, EventKind.ORDER_CANCELLED)
            got = stream.read_until([visible - 1, later])
    assert got == [visible - 1, later]  # not the event visible before the stream began


def test_a_revoked_keys_stream_ends(api: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.events.RECHECK_S", 0.1)
    url = f"{BASE}/alpha/events/stream"
    with api.client.stream("GET", url, headers=api.auth("alpha")) as response:
        stream = Stream(response)
        assert next(stream.lines) == "retry: 2000"
        key_id = api.keys["alpha"].split("_")[1]
        with Session(api.engine) as session:
            session.execute(update(ApiKey).where(ApiKey.key_id == key_id)
                            .values(revoked_at=datetime.now(UTC)))  # fmt: skip
            session.commit()
        lines = list(stream.lines)  # the server ends the stream
    assert "event: revoked" in lines
