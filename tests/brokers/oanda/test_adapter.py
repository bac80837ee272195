"""OandaBroker against httpx.MockTransport answering with OANDA's documented shapes."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from brokers.oanda.adapter import OandaBroker
from brokers.registry import make_adapter
from core.enums import BrokerKind, OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.oanda import payloads as p

TOKEN = "f00dcafe-secret-token"
PREFIX = f"/v3/accounts/{p.ACCOUNT}"
NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)


class Venue:
    """Records every request and answers with the queued answers for its path (the last
    one repeats)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, list[httpx.Response | Exception]] = {}
        self.on("/summary", _json(p.SUMMARY))
        self.on("/instruments", _json(p.INSTRUMENTS))

    def on(self, path: str, *answers: httpx.Response | Exception) -> None:
        self.routes[PREFIX + path] = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.raw_path.decode().split("?")[0])
        if not queue:
            return httpx.Response(404, json={"errorMessage": "no such route"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and r.url.raw_path.decode().split("?")[0] == PREFIX + path
        ]

    def body(self, method: str, path: str) -> Any:
        return json.loads(self.sent(method, path)[-1].content)


def _json(value: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=value, headers=headers)


def _broker(venue: Venue, **kw: Any) -> OandaBroker:
    client = httpx.Client(base_url="https://api-fxpractice.oanda.com",
                          transport=httpx.MockTransport(venue))  # fmt: skip
    kw.setdefault("sleep", lambda _s: None)
    return OandaBroker(client, account_id=p.ACCOUNT, token=TOKEN, now=lambda: NOW, **kw)


def _market(quantity: str = "100", side: Side = Side.BUY, **kw: Any) -> PlaceOrderRequest:
    return PlaceOrderRequest(client_order_id="cid-1", symbol="EUR_USD", side=side,
                             quantity=Decimal(quantity), **kw)  # fmt: skip


# -- place ----------------------------------------------------------------------------------


def test_a_market_order_is_sent_with_signed_units_and_its_fill_comes_back() -> None:
    venue = Venue()
    venue.on("/orders", _json(p.MARKET_FILLED, 201))
    report = _broker(venue).place(_market(time_in_force=TimeInForce.GTC))
    (post,) = venue.sent("POST", "/orders")
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.headers["Accept-Datetime-Format"] == "RFC3339"
    assert json.loads(post.content) == {"order": {
        "type": "MARKET", "instrument": "EUR_USD", "units": "100", "timeInForce": "FOK",
        "positionFill": "DEFAULT", "clientExtensions": {"id": "cid-1"},
    }}  # fmt: skip
    assert report.status is OrderStatus.FILLED
    assert report.fills[0].broker_fill_id == "6369"
    assert report.fills[0].fee == Decimal("0.0500")


def test_a_sell_limit_for_the_day_is_negative_units_good_for_day_with_its_price() -> None:
    venue = Venue()
    venue.on("/orders", _json(p.LIMIT_CREATED, 201))
    report = _broker(venue).place(_market(side=Side.SELL, order_type=OrderType.LIMIT,
                                          limit_price=Decimal("1.2"),
                                          time_in_force=TimeInForce.DAY))  # fmt: skip
    order = venue.body("POST", "/orders")["order"]
    assert order["units"] == "-100"
    assert order["type"] == "LIMIT"
    assert order["timeInForce"] == "GFD"
    assert order["price"] == "1.2"
    assert report.status is OrderStatus.NEW


def test_a_market_order_cancelled_at_creation_is_reported_rejected_with_the_reason() -> None:
    venue = Venue()
    venue.on("/orders", _json(p.MARKET_HALTED, 201))
    report = _broker(venue).place(_market())
    assert report.status is OrderStatus.REJECTED
    assert report.reject_reason == "MARKET_HALTED"
    assert report.broker_order_id == "6368"


@pytest.mark.parametrize(
    ("quantity", "instruments", "words"),
    [
        (
            "100.5",
            p.INSTRUMENTS,
            r"EUR_USD trades in whole units \(tradeUnitsPrecision 0\); 100.5 units",
        ),
        ("200000000", p.INSTRUMENTS, "above maximumOrderUnits"),
        ("100", {"instruments": [], "lastTransactionID": "1"}, "not tradeable"),
    ],
)
def test_units_the_instrument_cannot_take_are_refused_before_sending(
    quantity: str, instruments: object, words: str
) -> None:
    venue = Venue()
    venue.on("/instruments", _json(instruments))
    with pytest.raises(OrderRejected, match=words) as caught:
        _broker(venue).place(_market(quantity))
    assert caught.value.client_order_id == "cid-1"
    assert venue.sent("POST", "/orders") == []
    assert venue.sent("GET", "/instruments")[0].url.params["instruments"] == "EUR_USD"


def test_a_tenth_of_a_unit_goes_where_the_instrument_takes_it() -> None:
    venue = Venue()
    venue.on("/instruments", _json(p.BRENT))
    venue.on("/orders", _json(p.LIMIT_CREATED, 201))
    _broker(venue).place(PlaceOrderRequest(client_order_id="cid-2", symbol="BCO_USD",
                                           side=Side.BUY, quantity=Decimal("2.5")))  # fmt: skip
    assert venue.body("POST", "/orders")["order"]["units"] == "2.5"


def test_instrument_rules_are_cached_between_placements() -> None:
    venue = Venue()
    venue.on("/orders", _json(p.LIMIT_CREATED, 201))
    broker = _broker(venue)
    broker.place(_market())
    broker.place(_market())
    assert len(venue.sent("GET", "/instruments")) == 1
    assert len(venue.sent("GET", "/summary")) == 1


def test_terms_oanda_cannot_take_are_refused_before_anything_is_asked() -> None:
    venue = Venue()
    with pytest.raises(OrderRejected, match="stop_limit"):
        _broker(venue).place(_market(order_type=OrderType.STOP_LIMIT, limit_price=Decimal(1),
                                     stop_price=Decimal(1)))  # fmt: skip
    assert venue.requests == []


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (400, p.reject("CLIENT_ORDER_ID_ALREADY_EXISTS", "The client order ID specified is "
                       "already assigned"), DuplicateClientOrderId, "CLIENT_ORDER_ID_ALREADY"),
        (400, p.reject("INSUFFICIENT_MARGIN", "Insufficient margin"), OrderRejected,
         "INSUFFICIENT_MARGIN: Insufficient margin"),
        (404, p.reject("ACCOUNT_NOT_ACTIVE", "The account is not active"), OrderRejected,
         "ACCOUNT_NOT_ACTIVE"),
        (401, p.UNAUTHORIZED, AuthenticationFailed, "Insufficient authorization"),
        (403, {"errorMessage": "The provided request was forbidden."}, AuthenticationFailed,
         "forbidden"),
    ],
)  # fmt: skip
def test_refusals_carry_oandas_reason(
    status: int, body: object, error: type[Exception], words: str
) -> None:
    venue = Venue()
    venue.on("/orders", _json(body, status))
    with pytest.raises(error, match=words) as caught:
        _broker(venue).place(_market())
    assert type(caught.value) is error
    assert len(venue.sent("POST", "/orders")) == 1  # never resent


def test_a_lost_answer_is_answer_lost_and_the_client_id_lookup_finds_the_order() -> None:
    venue = Venue()
    venue.on("/orders", httpx.ReadTimeout("timed out"))
    found = copy.deepcopy(p.PENDING_LIMIT)
    found["order"]["clientExtensions"] = {"id": "cid/1"}
    venue.on("/orders/@cid%2F1", _json(found))
    broker = _broker(venue)
    with pytest.raises(AnswerLost) as caught:
        broker.place(_market().__class__(client_order_id="cid/1", symbol="EUR_USD",
                                         side=Side.BUY, quantity=Decimal(100)))  # fmt: skip
    assert caught.value.client_order_id == "cid/1"
    assert len(venue.sent("POST", "/orders")) == 1
    report = broker.get_order_by_client_id("cid/1", symbol="EUR_USD")
    assert report.client_order_id == "cid/1"
    assert report.broker_order_id == "2309"


@pytest.mark.parametrize(
    "answer",
    [_json({"errorMessage": "Service unavailable"}, 503), httpx.Response(201, content=b"{")],
)
def test_a_5xx_or_an_unreadable_201_to_a_placement_is_answer_lost(answer: httpx.Response) -> None:
    venue = Venue()
    venue.on("/orders", answer)
    with pytest.raises(AnswerLost, match="look it up by client order id"):
        _broker(venue).place(_market())
    assert len(venue.sent("POST", "/orders")) == 1


def test_a_placement_that_never_connected_is_sent_again() -> None:
    venue = Venue()
    venue.on("/orders", httpx.ConnectError("refused"), _json(p.MARKET_FILLED, 201))
    assert _broker(venue).place(_market()).status is OrderStatus.FILLED
    assert len(venue.sent("POST", "/orders")) == 2


# -- get, cancel, replace -------------------------------------------------------------------


def test_a_filled_order_is_read_with_its_fill_transaction() -> None:
    venue = Venue()
    order = {**p.MARKET_CREATE, "type": "MARKET", "createTime": p.MARKET_CREATE["time"],
             "state": "FILLED", "fillingTransactionID": "6369",
             "filledTime": p.MARKET_FILL["time"]}  # fmt: skip
    venue.on("/orders/6368", _json({"order": order, "lastTransactionID": "6369"}))
    venue.on("/transactions/6369", _json({"transaction": p.MARKET_FILL,
                                          "lastTransactionID": "6369"}))  # fmt: skip
    report = _broker(venue).get_order("6368")
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == Decimal(100)
    assert report.average_fill_price == Decimal("1.07201")
    assert report.client_order_id == "cid-1"


def test_a_cancelled_market_order_read_later_is_rejected_with_the_cancel_reason() -> None:
    venue = Venue()
    order = {**p.MARKET_CREATE, "type": "MARKET", "createTime": p.MARKET_CREATE["time"],
             "state": "CANCELLED", "cancellingTransactionID": "6369"}  # fmt: skip
    venue.on("/orders/6368", _json({"order": order, "lastTransactionID": "6369"}))
    venue.on("/transactions/6369", _json({"transaction": p.MARKET_HALTED[
        "orderCancelTransaction"], "lastTransactionID": "6369"}))  # fmt: skip
    report = _broker(venue).get_order("6368")
    assert report.status is OrderStatus.REJECTED
    assert report.reject_reason == "MARKET_HALTED"


def test_an_unknown_order_is_order_not_found_and_a_bad_body_malformed() -> None:
    venue = Venue()
    venue.on("/orders/1", _json(p.NO_SUCH_ORDER, 404))
    venue.on("/orders/2", _json({"order": {"id": "2"}, "lastTransactionID": "2"}))
    broker = _broker(venue)
    with pytest.raises(OrderNotFound, match="ORDER_DOESNT_EXIST") as caught:
        broker.get_order("1")
    assert caught.value.broker_order_id == "1"
    with pytest.raises(MalformedResponse, match="state") as bad:
        broker.get_order("2")
    assert bad.value.broker_order_id == "2"


def test_cancel_puts_and_tells_a_missing_order_from_one_that_cannot_be() -> None:
    venue = Venue()
    venue.on("/orders/2309/cancel", _json({"orderCancelTransaction": {
        "type": "ORDER_CANCEL", "orderID": "2309", "reason": "CLIENT_REQUEST", "id": "2310"},
        "relatedTransactionIDs": ["2310"], "lastTransactionID": "2310"}))  # fmt: skip
    broker = _broker(venue)
    broker.cancel("2309")
    assert len(venue.sent("PUT", "/orders/2309/cancel")) == 1

    def rejected(reason: str) -> dict[str, object]:
        return {
            "orderCancelRejectTransaction": {
                "type": "ORDER_CANCEL_REJECT",
                "orderID": "2309",
                "rejectReason": reason,
                "id": "2311",
            },
            "errorCode": reason,
            "errorMessage": "refused",
            "lastTransactionID": "2311",
        }

    venue.on("/orders/2309/cancel", _json(rejected("ORDER_DOESNT_EXIST"), 404))
    with pytest.raises(OrderNotFound):
        broker.cancel("2309")
    venue.on("/orders/2309/cancel", _json(rejected("ORDER_CANCEL_FAILED"), 400))
    with pytest.raises(OrderNotCancelable, match="ORDER_CANCEL_FAILED"):
        broker.cancel("2309")


def test_replace_sends_the_whole_new_order_and_returns_the_one_that_took_its_place() -> None:
    venue = Venue()
    venue.on("/orders/2309", _json(p.PENDING_LIMIT))
    created = copy.deepcopy(p.LIMIT_CREATED)
    created["orderCreateTransaction"].update(id="2311", replacesOrderID="2309", units="-50",
                                             clientExtensions={"id": "cid-2"})  # fmt: skip
    venue.on("/orders/2309", _json(p.PENDING_LIMIT), _json(created, 201))
    report = _broker(venue).replace("2309", ReplaceOrderRequest(
        client_order_id="cid-2", quantity=Decimal(50), time_in_force=TimeInForce.GTC,
        limit_price=Decimal("1.21")))  # fmt: skip
    assert venue.body("PUT", "/orders/2309") == {
        "order": {
            "type": "LIMIT",
            "instrument": "EUR_USD",
            "units": "-50",
            "timeInForce": "GTC",
            "positionFill": "DEFAULT",
            "clientExtensions": {"id": "cid-2"},
            "price": "1.21",
        }
    }
    assert report.broker_order_id == "2311"
    assert report.replaces == "2309"
    assert report.client_order_id == "cid-2"


def test_a_market_order_cannot_be_replaced() -> None:
    venue = Venue()
    order = {**p.MARKET_CREATE, "type": "MARKET", "createTime": p.MARKET_CREATE["time"],
             "state": "PENDING"}  # fmt: skip
    venue.on("/orders/6368", _json({"order": order, "lastTransactionID": "6368"}))
    with pytest.raises(OrderRejected, match="MARKET order cannot be replaced"):
        _broker(venue).replace(
            "6368",
            ReplaceOrderRequest(
                client_order_id="cid-2", quantity=Decimal(5), time_in_force=TimeInForce.FOK
            ),
        )
    assert venue.sent("PUT", "/orders/6368") == []


# -- lists ----------------------------------------------------------------------------------


def _order(order_id: int, minute: int, **changes: Any) -> dict[str, Any]:
    order = {**p.PENDING_LIMIT["order"], "id": str(order_id),
             "createTime": f"2024-05-02T10:{minute:02d}:00.000000000Z"}  # fmt: skip
    order.update(changes)
    return order


def test_list_orders_walks_newest_first_pages_and_returns_the_window_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("brokers.oanda.adapter.ORDERS_PER_REQUEST", 3)
    venue = Venue()
    first = [_order(9, 9), _order(8, 8, type="TAKE_PROFIT", units=None), _order(7, 7)]
    second = [_order(6, 6, state="FILLED"), {"state": "PENDING"}, _order(4, 4)]
    third = [_order(3, 3)]
    venue.on("/orders", *(_json({"orders": o, "lastTransactionID": "9"})
                          for o in (first, second, third, first, second, third)))  # fmt: skip
    broker = _broker(venue)
    after = datetime(2024, 5, 2, 10, 3, 30, tzinfo=UTC)
    page = broker.list_orders(after=after, page_size=2)
    assert [o.broker_order_id for o in page.items] == ["4", "6"]
    assert page.items[1].status is OrderStatus.FILLED
    assert [m.reason for m in page.malformed] == ["order without a readable id"]
    assert page.next_token == "6"
    calls = venue.sent("GET", "/orders")
    assert [dict(c.url.params) for c in calls] == [
        {"state": "ALL", "count": "3"},
        {"state": "ALL", "count": "3", "beforeID": "7"},
        {"state": "ALL", "count": "3", "beforeID": "4"},
    ]
    rest = broker.list_orders(page_token=page.next_token, page_size=2)
    assert [o.broker_order_id for o in rest.items] == ["7", "9"]
    assert rest.next_token is None


def test_list_open_orders_asks_for_pending_ones() -> None:
    venue = Venue()
    venue.on("/orders", _json({"orders": [_order(9, 9)], "lastTransactionID": "9"}))
    page = _broker(venue).list_orders(status="open")
    assert venue.sent("GET", "/orders")[0].url.params["state"] == "PENDING"
    assert [o.broker_order_id for o in page.items] == ["9"]


def test_list_fills_from_a_time_finds_the_first_id_then_reads_forward() -> None:
    venue = Venue()
    venue.on("/transactions", _json(p.transactions_summary(6369, 6375)))
    venue.on("/transactions/sinceid", _json({"transactions": [
        p.fill(6369, 6368), p.other(6370, "LIMIT_ORDER"), {"id": "6371", "type": "ORDER_FILL"},
        p.other(6372), p.fill(6373, 6372, units="-40", instrument="USD_JPY"),
    ], "lastTransactionID": "6375"}))  # fmt: skip
    after = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
    page = _broker(venue).list_fills(after=after)
    summary = venue.sent("GET", "/transactions")[0].url.params
    assert summary["from"] == "2024-05-02T09:00:00.000000Z"
    assert summary["type"] == "ORDER_FILL"
    assert venue.sent("GET", "/transactions/sinceid")[0].url.params["id"] == "6368"
    assert [f.broker_fill_id for f in page.items] == ["6369", "6373"]
    assert page.items[1].side is Side.SELL
    assert page.items[1].fee_asset == "USD"
    assert len(page.malformed) == 1
    assert page.malformed[0].raw == {"id": "6371", "type": "ORDER_FILL"}
    # The answer stopped at 6373 while OANDA's last is 6375 (sinceid caps its answers):
    # the next page reads on from there.
    assert page.next_token == "6373"


def test_list_fills_pages_on_the_last_transaction_id() -> None:
    venue = Venue()
    venue.on("/transactions/sinceid", _json({"transactions": [
        p.fill(11, 10), p.other(12), p.fill(13, 12), p.fill(15, 14),
    ], "lastTransactionID": "20"}))  # fmt: skip
    broker = _broker(venue)
    page = broker.list_fills(page_token="10", page_size=2)
    assert [f.broker_fill_id for f in page.items] == ["11", "13"]
    assert page.next_token == "13"
    assert broker.fill_cursor(page.items[-1]) == "13"
    capped = broker.list_fills(page_token="10")
    assert capped.next_token == "15"  # the answer stopped short of lastTransactionID 20
    with pytest.raises(ValueError, match="not an OANDA transaction id"):
        broker.list_fills(page_token="abc")


def test_list_fills_stops_at_until_and_an_empty_window_gives_the_last_id() -> None:
    venue = Venue()
    late = p.fill(13, 12, time="2024-05-02T11:00:00.000000000Z")
    venue.on("/transactions/sinceid", _json({"transactions": [p.fill(11, 10), late],
                                             "lastTransactionID": "20"}))  # fmt: skip
    broker = _broker(venue)
    until = datetime(2024, 5, 2, 10, 30, tzinfo=UTC)
    page = broker.list_fills(page_token="10", until=until)
    assert [f.broker_fill_id for f in page.items] == ["11"]
    assert page.next_token is None
    venue.on("/transactions", _json(p.transactions_summary(None, 6400)))
    empty = broker.list_fills(after=NOW)
    assert empty.items == ()
    assert empty.next_token == "6400"


def test_positions_are_one_signed_quantity_per_instrument() -> None:
    venue = Venue()
    venue.on("/openPositions", _json(p.OPEN_POSITIONS))
    (position,) = _broker(venue).list_positions()
    assert position.symbol == "EUR_USD"
    assert position.quantity == Decimal(-100)


def test_get_trades_asks_for_the_ids_in_any_state_fifty_a_request() -> None:
    """Each request names at most 50 ids with ``state=ALL`` and a count as large; the trades
    come back oldest first, an unreadable one kept as malformed, one not asked for dropped."""
    venue = Venue()
    unreadable = {**p.CLOSED_TRADE, "id": "2400", "state": "GONE"}
    venue.on("/trades", _json({"trades": [unreadable, *p.TRADES["trades"]]}),
             _json({"trades": [p.CLOSED_TRADE]}))  # fmt: skip
    ids = [str(n) for n in range(2300, 2351)]  # 51 ids: two requests
    page = _broker(venue).get_trades(ids)
    first, second = venue.sent("GET", "/trades")
    assert first.url.params["state"] == "ALL"
    assert first.url.params["ids"] == ",".join(ids[:50])
    assert first.url.params["count"] == "50"
    assert second.url.params["ids"] == "2350"
    assert second.url.params["count"] == "1"
    # the second answer's 2313 is not among that request's ids: dropped
    assert [(t.trade_id, t.state) for t in page.items] == [("2313", "OPEN"), ("2315", "OPEN")]
    assert [m.raw for m in page.malformed] == [unreadable]


def test_get_trades_needs_oanda_ids_and_an_empty_ask_sends_nothing() -> None:
    venue = Venue()
    broker = _broker(venue)
    with pytest.raises(ValueError, match="transaction ids"):
        broker.get_trades(["@mine"])
    assert broker.get_trades([]).items == ()
    assert venue.sent("GET", "/trades") == []


def test_the_home_currency_is_read_once() -> None:
    venue = Venue()
    broker = _broker(venue)
    assert broker.home_currency() == "USD"
    assert broker.home_currency() == "USD"
    assert len(venue.sent("GET", "/summary")) == 1


# -- rate limits, retries, secrets ----------------------------------------------------------


def test_a_429_tells_the_observer_and_is_retried() -> None:
    venue = Venue()
    venue.on(
        "/openPositions",
        _json({"errorMessage": "Too many requests"}, 429, **{"Retry-After": "1"}),
        _json(p.OPEN_POSITIONS),
    )
    seen: list[RateLimitInfo] = []
    waits: list[float] = []
    _broker(venue, observer=seen.append, sleep=waits.append).list_positions()
    assert [i.status_code for i in seen] == [429]
    assert seen[0].reset_at == NOW.replace(second=1)
    assert waits == [1.0]


def test_429s_out_of_attempts_are_rate_limited_and_5xx_unavailable() -> None:
    venue = Venue()
    venue.on("/openPositions", _json({"errorMessage": "Too many requests"}, 429))
    with pytest.raises(RateLimited):
        _broker(venue, max_attempts=2).list_positions()
    venue.on("/openPositions", _json({"errorMessage": "down"}, 502))
    with pytest.raises(BrokerUnavailable, match="down after 2 attempts"):
        _broker(venue, max_attempts=2).list_positions()


def test_the_token_is_never_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    venue = Venue()
    venue.on("/openPositions", httpx.ReadTimeout("timed out"), _json(p.UNAUTHORIZED, 401))
    broker = _broker(venue)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationFailed) as caught:
        broker.list_positions()
    assert TOKEN not in repr(broker)
    assert TOKEN not in repr(broker._http._auth)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caplog.text
    assert "retrying" in caplog.text


def test_the_registry_builds_it_from_the_account_id_and_token_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OANDA_TEST_KEY_ID", p.ACCOUNT)
    monkeypatch.setenv("OANDA_TEST_SECRET_KEY", TOKEN)
    adapter = make_adapter(account="fx", broker=BrokerKind.OANDA,
                           base_url="https://api-fxpractice.oanda.com",
                           credentials_env="OANDA_TEST", timeout_s=1, max_attempts=1,
                           max_retry_wait_s=0)  # fmt: skip
    try:
        assert isinstance(adapter, OandaBroker)
        assert p.ACCOUNT in repr(adapter)
        assert TOKEN not in repr(adapter)
    finally:
        adapter.close()
