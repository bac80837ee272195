"""OandaStream against httpx.MockTransport: the transaction stream's lines (OANDA's documented
transaction shapes) and the REST answers it asks for, served by one fake venue."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from brokers.base import Unreadable
from brokers.errors import AuthenticationFailed, BrokerUnavailable
from brokers.oanda.adapter import OandaBroker
from brokers.oanda.stream import OandaStream, stream_url
from brokers.registry import connect_stream
from core.enums import BrokerKind, OrderStatus, OrderType, TimeInForce
from core.reports import OrderReport, StreamEvent
from tests.brokers.oanda import payloads as p
from tests.brokers.oanda.test_adapter import PREFIX, TOKEN, Venue, _json

HOST = "https://stream-fxpractice.oanda.com"
LAST = 6367  # the account's last transaction when the stream opens (SUMMARY, adjusted)
HEARTBEAT = {"type": "HEARTBEAT", "lastTransactionID": str(LAST),
             "time": "2024-05-02T10:00:05.000000000Z"}  # fmt: skip
Item = StreamEvent | Unreadable | None


class Lines:
    """A streaming body: the lines given, then held open until ``end`` (or its end)."""

    def __init__(self, *lines: object, hold: bool = True) -> None:
        self.lines = [x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines]
        self.ended = threading.Event()
        if not hold:
            self.ended.set()

    def __iter__(self) -> Iterator[bytes]:
        for line in self.lines:
            yield line + b"\n"
        self.ended.wait(10)


def _venue(body: Lines | httpx.Response, last: int = LAST) -> Venue:
    venue = Venue()
    venue.on("/summary", _json({**p.SUMMARY, "lastTransactionID": str(last)}))
    if isinstance(body, Lines):
        body = httpx.Response(200, content=iter(body))
    venue.on("/transactions/stream", body)
    return venue


def _stream(venue: Venue) -> OandaStream:
    transport = httpx.MockTransport(venue)
    rest = OandaBroker(httpx.Client(base_url="https://api-fxpractice.oanda.com",
                                    transport=transport), account_id=p.ACCOUNT,
                       token=TOKEN, sleep=lambda _s: None)  # fmt: skip
    return OandaStream(HOST, p.ACCOUNT, TOKEN, rest, transport=transport)


def _read(body: Lines, n: int, last: int = LAST) -> list[StreamEvent | Unreadable]:
    """The first ``n`` items (Nones skipped) the stream yields for ``body``."""
    found: list[StreamEvent | Unreadable] = []
    with _stream(_venue(body, last)) as stream:
        for item in stream.events(0.05):
            if item is not None:
                found.append(item)
            if len(found) == n:
                break
        body.ended.set()
    return found


def _event(item: Item) -> StreamEvent:
    assert isinstance(item, StreamEvent), item
    return item


def _gap(item: Item) -> Unreadable:
    assert isinstance(item, Unreadable), item
    return item


def test_the_stream_host_is_oandas_for_its_rest_hosts_and_the_same_host_elsewhere() -> None:
    assert stream_url("https://api-fxtrade.oanda.com") == "https://stream-fxtrade.oanda.com"
    assert stream_url("https://api-fxpractice.oanda.com/") == HOST
    assert stream_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


def test_it_asks_with_the_bearer_token_and_never_shows_it() -> None:
    venue = _venue(Lines(hold=False))
    stream = _stream(venue)
    stream.open()
    stream.close()
    asked = next(r for r in venue.requests if r.url.path.endswith("/transactions/stream"))
    assert asked.url.host == "stream-fxpractice.oanda.com"
    assert asked.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(stream)


def test_a_market_order_is_accepted_then_filled_with_the_rest_listings_fill() -> None:
    create, fill = p.MARKET_CREATE, p.MARKET_FILL
    made, filled = _read(Lines(create, fill), 2)
    new = _event(made)
    assert (new.kind, new.event_id, new.report.status) == ("MARKET_ORDER", "6368",
                                                           OrderStatus.NEW)  # fmt: skip
    assert (new.report.broker_order_id, new.report.client_order_id) == ("6368", "cid-1")
    assert (new.report.quantity, new.report.order_type, new.report.time_in_force) == (
        Decimal(100), OrderType.MARKET, TimeInForce.FOK)  # fmt: skip
    done = _event(filled)
    assert done.report.status is OrderStatus.FILLED
    assert done.report.filled_quantity == Decimal(100)
    assert done.report.average_fill_price == Decimal("1.07201")  # the trade's exact price
    # The very fill the REST listing gives for this transaction: one id, one record.
    venue = Venue()
    venue.on("/transactions/sinceid", _json({"transactions": [fill],
                                             "lastTransactionID": "6369"}))  # fmt: skip
    client = httpx.Client(base_url=HOST, transport=httpx.MockTransport(venue))
    listed = OandaBroker(client, account_id=p.ACCOUNT, token=TOKEN).list_fills(page_token="6368")
    assert done.fill == listed.items[0]
    assert done.report.fills == (listed.items[0],)
    assert (done.fill.broker_fill_id, done.fill.fee) == ("6369", Decimal("0.0500"))


def test_a_limit_order_filled_in_parts_is_partly_then_wholly_filled() -> None:
    create = {**p.LIMIT_CREATED["orderCreateTransaction"], "id": "6368", "batchID": "6368",
              "clientExtensions": {"id": "cid-2"}}  # fmt: skip
    first = p.fill(6369, 6368, "-40", clientOrderID="cid-2", reason="LIMIT_ORDER")
    again = copy.deepcopy(first)  # a duplicated line: counted once
    rest = p.fill(6370, 6368, "-60", clientOrderID="cid-2", reason="LIMIT_ORDER")
    made, part, twice, whole = (_event(x) for x in _read(Lines(create, first, again, rest), 4))
    assert (made.report.limit_price, made.report.status) == (Decimal("1.2"), OrderStatus.NEW)
    assert (part.report.status, part.report.filled_quantity) == (OrderStatus.PARTIALLY_FILLED,
                                                                 Decimal(40))  # fmt: skip
    assert twice.report.filled_quantity == Decimal(40)
    assert (whole.report.status, whole.report.filled_quantity) == (OrderStatus.FILLED,
                                                                   Decimal(100))  # fmt: skip
    assert whole.fill is not None
    assert whole.fill.broker_fill_id == "6370"


def test_a_market_order_cancelled_in_its_batch_is_rejected_with_oandas_reason() -> None:
    create, cancel = p.MARKET_HALTED["orderCreateTransaction"], p.MARKET_HALTED[
        "orderCancelTransaction"]  # fmt: skip
    _, cancelled = _read(Lines(create, cancel), 2)
    report = _event(cancelled).report
    assert (report.status, report.reject_reason) == (OrderStatus.REJECTED, "MARKET_HALTED")


def test_a_replaced_order_names_its_successor_which_names_it() -> None:
    create = {**p.LIMIT_CREATED["orderCreateTransaction"], "id": "6368", "batchID": "6368",
              "clientExtensions": {"id": "cid-3"}}  # fmt: skip
    cancel = {"type": "ORDER_CANCEL", "orderID": "6368", "clientOrderID": "cid-3",
              "reason": "CLIENT_REQUEST_REPLACED", "replacedByOrderID": "6370", "id": "6369",
              "batchID": "6369", "time": "2024-05-02T10:00:01.000000000Z"}  # fmt: skip
    successor = {**create, "id": "6370", "batchID": "6369", "replacesOrderID": "6368",
                 "clientExtensions": {"id": "cid-4"}, "price": "1.19000"}  # fmt: skip
    _, old, new = (_event(x).report for x in _read(Lines(create, cancel, successor), 3))
    assert (old.status, old.replaced_by) == (OrderStatus.REPLACED, "6370")
    assert (new.status, new.replaces, new.limit_price) == (OrderStatus.NEW, "6368",
                                                           Decimal("1.19"))  # fmt: skip


def test_a_refused_order_is_rejected_with_the_reject_reason() -> None:
    refusal = p.reject("INSUFFICIENT_MARGIN", "no margin")["orderRejectTransaction"]
    refusal = {**refusal, "id": str(LAST + 1), "clientExtensions": {"id": "cid-9"}}
    (item,) = _read(Lines(refusal), 1)
    report = _event(item).report
    assert (report.status, report.client_order_id) == (OrderStatus.REJECTED, "cid-9")
    assert report.reject_reason == "INSUFFICIENT_MARGIN"


def test_a_fill_of_an_order_made_before_the_stream_is_read_with_the_order_by_rest() -> None:
    order = {**p.MARKET_CREATE, "type": "MARKET", "createTime": p.MARKET_CREATE["time"],
             "state": "FILLED", "fillingTransactionID": "6369",
             "filledTime": p.MARKET_FILL["time"]}  # fmt: skip
    venue = _venue(Lines(p.MARKET_FILL), last=6368)
    venue.on("/orders/6368", _json({"order": order, "lastTransactionID": "6369"}))
    venue.on("/transactions/6369", _json({"transaction": p.MARKET_FILL,
                                          "lastTransactionID": "6369"}))  # fmt: skip
    with _stream(venue) as stream:
        item = next(x for x in stream.events(0.05) if x is not None)
    event = _event(item)
    assert (event.report.status, event.report.quantity) == (OrderStatus.FILLED, Decimal(100))
    assert event.fill is not None
    assert event.report.fills == (event.fill,)


def test_other_transactions_and_trade_exits_make_no_event() -> None:
    exit_fill = p.fill(LAST + 3, LAST + 2, reason="TAKE_PROFIT_ORDER")
    exit_fill.pop("clientOrderID")
    lines = Lines(p.other(LAST + 1), p.other(LAST + 2, "TAKE_PROFIT_ORDER"), exit_fill,
                  HEARTBEAT | {"lastTransactionID": str(LAST + 3)}, b"not json")  # fmt: skip
    (item,) = _read(lines, 1)  # the bad line after them is the first thing told
    assert _gap(item).excerpt == "not json"


def test_transactions_before_the_stream_listened_are_left_to_the_catch_up() -> None:
    old = {**p.MARKET_CREATE, "id": str(LAST)}
    (item,) = _read(Lines(old, {**p.MARKET_CREATE, "id": str(LAST + 1)}), 1)
    assert _event(item).event_id == str(LAST + 1)  # no gap: LAST was before it


def test_a_jump_in_transaction_ids_is_lost_news_then_the_transaction_is_read() -> None:
    lost, made = _read(Lines({**p.MARKET_CREATE, "id": str(LAST + 3)}), 2)
    assert _gap(lost).reason.startswith(f"transactions lost: {LAST + 1}..{LAST + 2}")
    assert _event(made).event_id == str(LAST + 3)


def test_a_heartbeat_ahead_of_what_was_read_is_lost_news_once() -> None:
    ahead = HEARTBEAT | {"lastTransactionID": str(LAST + 2)}
    lost, made = _read(Lines(HEARTBEAT, ahead, ahead, {**p.MARKET_CREATE,
                                                       "id": str(LAST + 3)}), 2)  # fmt: skip
    assert _gap(lost).reason.startswith(f"transactions lost: {LAST + 1}..{LAST + 2}")
    assert _event(made).event_id == str(LAST + 3)


def test_unreadable_lines_are_kept_and_reading_goes_on() -> None:
    broken = {**p.MARKET_FILL, "id": str(LAST + 2), "units": "lots"}
    lines = Lines(b"{oops", [1, 2], {"type": "ORDER_FILL"}, {**p.MARKET_CREATE, "id": str(
        LAST + 1)}, broken, HEARTBEAT | {"lastTransactionID": "x"})  # fmt: skip
    items = _read(lines, 6)
    reasons = [x.reason for x in items if isinstance(x, Unreadable)]
    assert len(reasons) == 5
    assert "a transaction without a readable id" in reasons
    assert _event(items[3]).kind == "MARKET_ORDER"
    assert all(x.excerpt for x in items if isinstance(x, Unreadable))


def test_silence_yields_none_and_the_end_of_the_connection_is_unavailable() -> None:
    body = Lines(HEARTBEAT)
    with _stream(_venue(body)) as stream:
        events = stream.events(0.02)
        assert next(events) is None
        body.ended.set()
        with pytest.raises(BrokerUnavailable, match="connection lost: the server ended"):
            for _ in events:
                pass


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_authentication_failed(status: int) -> None:
    stream = _stream(_venue(_json(p.UNAUTHORIZED, status)))
    with pytest.raises(AuthenticationFailed, match="Insufficient authorization"):
        stream.open()


def test_a_failing_stream_host_is_unavailable() -> None:
    stream = _stream(_venue(_json({"errorMessage": "down"}, 503)))
    with pytest.raises(BrokerUnavailable, match="HTTP 503"):
        stream.open()
    # A REST host that cannot tell where the transactions stand: not opened.
    transport = httpx.MockTransport(_venue(Lines(hold=False)))
    blind = OandaStream(HOST, p.ACCOUNT, TOKEN, _BlindRest(), transport=transport)
    with pytest.raises(BrokerUnavailable, match="summary down"):
        blind.open()


class _BlindRest:
    def last_transaction_id(self) -> int:
        raise BrokerUnavailable("summary down", broker="oanda")

    def home_currency(self) -> str:
        return "USD"

    def get_order(self, broker_order_id: str) -> OrderReport:
        raise AssertionError("not asked")


def test_the_registry_connects_oanda_accounts_with_their_id_and_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OA_KEY_ID", p.ACCOUNT)
    monkeypatch.setenv("OA_SECRET_KEY", TOKEN)
    stream = connect_stream(account="oa", broker=BrokerKind.OANDA,
                            base_url="https://api-fxtrade.oanda.com",
                            credentials_env="OA")  # fmt: skip
    assert isinstance(stream, OandaStream)
    assert stream.url == (f"https://stream-fxtrade.oanda.com{PREFIX}/transactions/stream")
    stream.close()
