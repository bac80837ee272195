"""TradierBroker against httpx.MockTransport answering with Tradier's documented shapes
(fixtures in test_parse; sources cited there)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from brokers.tradier.adapter import CLIENT_ID_WINDOW, FETCH_LIMIT, MAX_PAGES, TradierBroker
from brokers.tradier.tags import tag_for
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.tradier.test_parse import EQUITY, MULTILEG, OPTION

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York
TOKEN = "s3cr3t-t0ken"
ACCOUNT = "VA000000"
ORDERS = f"/v1/accounts/{ACCOUNT}/orders"
PLACED = {"order": {"id": 257459, "status": "ok", "partner_id": "c4998eb7-06e8-4820-a7ab"}}
Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Venue:
    """Records every request and answers with the queued answers for its method and path
    (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], list[Answer]] = {}

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes.setdefault((method, path), []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(404, text="Not Found")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def broker(venue: Venue, **kw: Any) -> TradierBroker:
    client = httpx.Client(base_url="https://api.tradier.com", transport=httpx.MockTransport(venue))
    kw.setdefault("sleep", lambda _s: None)
    return TradierBroker(client, account_number=ACCOUNT, access_token=TOKEN, now=lambda: NOW, **kw)


def ok(value: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=value, headers=headers)


def listed(*orders: dict[str, Any]) -> httpx.Response:
    if not orders:
        return ok({"orders": "null"})
    return ok({"orders": {"order": orders[0] if len(orders) == 1 else list(orders)}})


def made(order_id: int, created: datetime, **changes: Any) -> dict[str, Any]:
    """The docs' equity order under another id and creation time."""
    stamp = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {**EQUITY, "id": order_id, "create_date": stamp, "transaction_date": stamp, **changes}


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


LIMIT_BUY = PlaceOrderRequest(
    client_order_id="entry_1.a", symbol="AAPL", side=Side.BUY, quantity=Decimal("50"),
    order_type=OrderType.LIMIT, limit_price=Decimal("22.00"), time_in_force=TimeInForce.GTC,
)  # fmt: skip


# -- place ------------------------------------------------------------------------------


def test_place_sends_a_form_with_the_tag_as_json_accepting_bearer_and_reports_pending() -> None:
    venue = Venue()
    venue.on("POST", ORDERS, ok(PLACED))

    report = broker(venue).place(LIMIT_BUY)

    (request,) = venue.requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "class": ["equity"], "symbol": ["AAPL"], "side": ["buy"], "quantity": ["50"],
        "type": ["limit"], "duration": ["gtc"], "price": ["22.00"],
        "tag": [tag_for("entry_1.a")],
    }  # fmt: skip
    assert report.broker_order_id == "257459"
    assert report.client_order_id == "entry_1.a"
    assert report.status is OrderStatus.PENDING_NEW
    assert report.limit_price == Decimal("22.00")
    assert report.created_at == NOW


def test_a_stop_order_sends_its_stop() -> None:
    venue = Venue()
    venue.on("POST", ORDERS, ok(PLACED))
    request = PlaceOrderRequest(client_order_id="c", symbol="AAPL", side=Side.SELL,
                                quantity=Decimal("5"), order_type=OrderType.STOP,
                                stop_price=Decimal("19.5"))  # fmt: skip

    broker(venue).place(request)

    form = parse_qs(venue.requests[0].content.decode())
    assert (form["type"], form["stop"], form["side"]) == (["stop"], ["19.5"], ["sell"])
    assert "price" not in form


@pytest.mark.parametrize(
    ("answer", "error", "said"),
    [
        (ok({"errors": {"error": ["DayTradingBuyingPowerExceeded"]}}), OrderRejected,
         "DayTradingBuyingPowerExceeded"),
        (httpx.Response(400, text="Invalid Parameter: quantity"), OrderRejected,
         "Invalid Parameter: quantity"),
        (ok({"fault": {"faultstring": "Invalid Access Token",
                       "detail": {"errorcode": "keymanagement.service.invalid_access_token"}}},
            401), AuthenticationFailed, "Invalid Access Token"),
        (httpx.Response(403, text="Forbidden"), AuthenticationFailed, "Forbidden"),
    ],
)  # fmt: skip
def test_placement_refusals_in_each_shape_name_the_client_id(
    answer: httpx.Response, error: type[Exception], said: str
) -> None:
    venue = Venue()
    venue.on("POST", ORDERS, answer)

    with pytest.raises(error, match=said) as caught:
        broker(venue).place(LIMIT_BUY)

    assert "client_order_id=entry_1.a" in str(caught.value)
    assert len(venue.requests) == 1  # a refusal is never resent


def test_terms_tradier_cannot_take_are_refused_before_sending() -> None:
    venue = Venue()
    option = PlaceOrderRequest(client_order_id="o", symbol="AAPL240119C00150000",
                               side=Side.BUY, quantity=Decimal("1"))  # fmt: skip

    with pytest.raises(OrderRejected, match="AAPL240119C00150000 is an option"):
        broker(venue).place(option)
    with pytest.raises(OrderRejected, match="cannot be carried in a Tradier tag"):
        broker(venue).place(PlaceOrderRequest(client_order_id="€" * 128, symbol="AAPL",
                                              side=Side.BUY, quantity=Decimal(1)))  # fmt: skip
    assert venue.requests == []


@pytest.mark.parametrize(
    "answers",
    [
        [httpx.ReadTimeout("slow")],
        [httpx.Response(502, text="Bad Gateway")],  # may come after the order was made
        [httpx.Response(200, text="<order><id>1</id></order>")],  # XML: unreadable here
    ],
)
def test_a_lost_placement_answer_is_answer_lost_and_not_resent(answers: list[Answer]) -> None:
    venue = Venue()
    venue.on("POST", ORDERS, *answers)

    with pytest.raises(AnswerLost, match="look it up by client order id"):
        broker(venue).place(LIMIT_BUY)

    assert len(venue.requests) == 1


def test_a_placement_that_could_not_connect_is_sent_again() -> None:
    venue = Venue()
    venue.on("POST", ORDERS, httpx.ConnectError("refused"), ok(PLACED))

    assert broker(venue).place(LIMIT_BUY).broker_order_id == "257459"
    assert len(venue.requests) == 2


def test_a_lost_answer_is_resolved_by_the_client_id_lookup() -> None:
    """The worker's path: AnswerLost, then get_order_by_client_id finds the order."""
    venue = Venue()
    venue.on("POST", ORDERS, httpx.ReadTimeout("slow"))
    mine = made(257459, NOW - timedelta(seconds=2), status="open", tag=tag_for("entry_1.a"))
    other = made(257400, NOW - timedelta(minutes=5), tag="my-tag-example-1")
    venue.on("GET", ORDERS, listed(other, mine))
    adapter = broker(venue)

    with pytest.raises(AnswerLost):
        adapter.place(LIMIT_BUY)
    found = adapter.get_order_by_client_id("entry_1.a", symbol="AAPL")

    assert (found.broker_order_id, found.client_order_id) == ("257459", "entry_1.a")
    assert found.status is OrderStatus.NEW
    lookup = venue.requests[-1]
    assert query(lookup) == {"includeTags": "true", "page": "1", "limit": str(FETCH_LIMIT)}


# -- lookups ----------------------------------------------------------------------------


def test_the_client_id_lookup_widens_to_the_window_when_the_session_lacks_it() -> None:
    venue = Venue()
    yesterday = made(9, NOW - timedelta(days=1), status="filled", exec_quantity=50,
                     avg_fill_price=21.9, tag=tag_for("old-1"))  # fmt: skip
    venue.on("GET", ORDERS, listed(), listed(yesterday))

    found = broker(venue).get_order_by_client_id("old-1")

    assert found.broker_order_id == "9"
    assert found.average_fill_price == Decimal("21.9")
    session, window = (query(r) for r in venue.requests)
    assert "filter" not in session
    start = (NOW - CLIENT_ID_WINDOW).date().isoformat()
    assert window == {"filter": "all", "start": start, "includeTags": "true", "page": "1",
                      "limit": str(FETCH_LIMIT)}  # fmt: skip


def test_a_client_id_found_nowhere_is_order_not_found() -> None:
    venue = Venue()
    venue.on("GET", ORDERS, listed(made(1, NOW, tag="my-tag")))

    with pytest.raises(OrderNotFound, match="no order tagged oc-ghost") as caught:
        broker(venue).get_order_by_client_id("ghost")

    assert caught.value.client_order_id == "ghost"
    assert len(venue.requests) == 2


def test_two_orders_under_one_tag_report_the_first_and_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    venue = Venue()
    tag = tag_for("twice")
    venue.on("GET", ORDERS, listed(made(8, NOW, tag=tag), made(7, NOW - timedelta(1), tag=tag)))

    with caplog.at_level(logging.WARNING):
        found = broker(venue).get_order_by_client_id("twice")

    assert found.broker_order_id == "7"
    assert "2 orders carry client order id twice: 7, 8" in caplog.text


def test_the_lookup_reads_every_page_of_a_listing() -> None:
    venue = Venue()
    first = [made(i, NOW - timedelta(minutes=i)) for i in range(1, FETCH_LIMIT + 1)]
    wanted = made(999, NOW, tag=tag_for("late"))
    venue.on("GET", ORDERS, listed(*first), listed(wanted))

    assert broker(venue).get_order_by_client_id("late").broker_order_id == "999"
    assert [query(r)["page"] for r in venue.requests] == ["1", "2"]


def by_page(size: int, pages: int | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A listing of ``size`` orders a page (ids by page), empty after ``pages`` pages."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(query(request)["page"])
        if pages is not None and page > pages:
            return listed()
        return listed(*(made(page * 1000 + i, NOW) for i in range(size)))

    return answer


def test_a_listing_too_long_to_read_proves_nothing() -> None:
    venue = Venue()
    venue.on("GET", ORDERS, by_page(FETCH_LIMIT))

    with pytest.raises(BrokerError, match="list a narrower window") as caught:
        broker(venue).get_order_by_client_id("x")

    assert not isinstance(caught.value, OrderNotFound)
    assert len(venue.requests) == MAX_PAGES


def test_a_listing_that_ignores_limit_is_read_by_its_default_pages_of_25() -> None:
    venue = Venue()
    venue.on("GET", ORDERS, by_page(25, pages=2))

    page = broker(venue).list_orders(page_size=1000)

    assert len(page.items) == 50
    assert [query(r)["page"] for r in venue.requests] == ["1", "2", "3"]


def test_a_listing_that_ignores_page_stops_when_nothing_new_comes() -> None:
    venue = Venue()
    venue.on("GET", ORDERS, listed(*(made(i, NOW) for i in range(FETCH_LIMIT))))

    assert len(broker(venue).list_orders(page_size=1000).items) == FETCH_LIMIT
    assert len(venue.requests) == 2


def test_get_order_asks_for_tags_and_reads_the_order() -> None:
    venue = Venue()
    venue.on("GET", f"{ORDERS}/228749", ok({"order": {**OPTION, "tag": tag_for("opt-1")}}))

    report = broker(venue).get_order("228749")

    assert query(venue.requests[0]) == {"includeTags": "true"}
    assert (report.symbol, report.client_order_id) == ("SPY180720C00274000", "opt-1")


def test_a_multileg_order_is_read_back_with_its_legs() -> None:
    venue = Venue()
    venue.on("GET", f"{ORDERS}/300100", ok({"order": MULTILEG}))

    report = broker(venue).get_order("300100")

    assert [leg.broker_order_id for leg in report.legs] == ["300101", "300102"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(404, text="Not Found"), OrderNotFound),
        (httpx.Response(401, text="Invalid Access Token"), AuthenticationFailed),
        (ok({"errors": {"error": "Order not found"}}), BrokerError),
        (ok({"order": {"id": 5}}), MalformedResponse),
        (httpx.Response(500, text="oops"), BrokerUnavailable),
    ],
)
def test_get_order_failures_name_the_order(answer: httpx.Response, error: type[Exception]) -> None:
    venue = Venue()
    venue.on("GET", f"{ORDERS}/5", answer)

    with pytest.raises(error) as caught:
        broker(venue).get_order("5")

    assert type(caught.value) is error
    assert "broker_order_id=5" in str(caught.value)


# -- lists ------------------------------------------------------------------------------


def test_list_orders_of_the_session_come_oldest_first_in_pages() -> None:
    venue = Venue()
    at = NOW - timedelta(hours=1)
    orders = [made(3, at), made(1, at + timedelta(seconds=1)), made(2, at)]
    venue.on("GET", ORDERS, listed(*orders))
    adapter = broker(venue)

    first = adapter.list_orders(page_size=2)
    second = adapter.list_orders(page_size=2, page_token=first.next_token)

    assert [r.broker_order_id for r in first.items] == ["2", "3"]  # ties by numeric id
    assert [r.broker_order_id for r in second.items] == ["1"]
    assert second.next_token is None
    assert all("filter" not in query(r) for r in venue.requests)


def test_list_orders_after_a_time_uses_the_all_filter_from_that_day_and_filters_status() -> None:
    venue = Venue()
    after = NOW - timedelta(days=2)
    venue.on("GET", ORDERS, listed(
        made(1, after - timedelta(hours=1), status="open"),  # before the window
        made(2, after + timedelta(hours=1), status="open"),
        made(3, after + timedelta(hours=2), status="filled", exec_quantity=50,
             avg_fill_price=22),
    ))  # fmt: skip

    page = broker(venue).list_orders(status="open", after=after)

    assert [r.broker_order_id for r in page.items] == ["2"]
    assert query(venue.requests[0])["filter"] == "all"
    assert query(venue.requests[0])["start"] == "2024-03-03"
    assert "end" not in query(venue.requests[0])


def test_an_old_window_names_its_end_day() -> None:
    venue = Venue()
    venue.on("GET", ORDERS, listed())

    broker(venue).list_orders(after=NOW - timedelta(days=10), until=NOW - timedelta(days=5))

    assert query(venue.requests[0])["end"] == "2024-02-29"


def test_an_unreadable_order_is_kept_as_malformed_and_the_rest_listed() -> None:
    venue = Venue()
    broken = made(2, NOW - timedelta(minutes=1), side="sideways")
    dateless = {**made(3, NOW), "create_date": None}
    venue.on("GET", ORDERS, listed(made(1, NOW - timedelta(minutes=2)), broken, dateless))

    page = broker(venue).list_orders()

    assert [r.broker_order_id for r in page.items] == ["1"]
    reasons = sorted(m.reason for m in page.malformed)
    assert reasons == ["order without a readable create_date and id", "unknown side 'sideways'"]


def test_list_orders_refuses_bad_arguments_clearly() -> None:
    adapter = broker(Venue())

    with pytest.raises(ValueError, match="at most a month"):
        adapter.list_orders(after=NOW - timedelta(days=40))
    with pytest.raises(ValueError, match="naive"):
        adapter.list_orders(after=datetime(2024, 3, 1))
    with pytest.raises(ValueError, match="status must be"):
        adapter.list_orders(status="working")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page token"):
        adapter.list_orders(page_token="nope")


def test_positions_null_one_and_many() -> None:
    venue = Venue()
    path = f"/v1/accounts/{ACCOUNT}/positions"
    aapl = {"cost_basis": 207.01, "date_acquired": "2018-08-08T14:41:11.405Z", "id": 130089,
            "quantity": 1.0, "symbol": "AAPL"}  # fmt: skip
    venue.on("GET", path, ok({"positions": "null"}), ok({"positions": {"position": aapl}}),
             ok({"positions": {"position": [aapl, {**aapl, "symbol": "AMZN"}]}}))  # fmt: skip
    adapter = broker(venue)

    assert adapter.list_positions() == []
    (one,) = adapter.list_positions()
    assert (one.symbol, one.quantity, one.average_entry_price) == (
        "AAPL", Decimal("1.0"), Decimal("207.01"),
    )  # fmt: skip
    assert [p.symbol for p in adapter.list_positions()] == ["AAPL", "AMZN"]


def test_an_unreadable_position_fails_the_call() -> None:
    venue = Venue()
    venue.on("GET", f"/v1/accounts/{ACCOUNT}/positions",
             ok({"positions": {"position": {"symbol": "AAPL"}}}))  # fmt: skip

    with pytest.raises(MalformedResponse, match="quantity"):
        broker(venue).list_positions()


def test_no_fill_listing() -> None:
    adapter = broker(Venue())

    assert adapter.lists_fills is False
    assert adapter.list_fills(after=NOW).items == ()


# -- cancel, replace --------------------------------------------------------------------


def test_cancel_deletes_the_order() -> None:
    venue = Venue()
    venue.on("DELETE", f"{ORDERS}/123456", ok({"order": {"id": 123456, "status": "ok"}}))

    broker(venue).cancel("123456")

    assert [r.method for r in venue.requests] == ["DELETE"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(400, text="Order is already in a final state"), OrderNotCancelable),
        (ok({"errors": {"error": ["Backoffice rejected cancel of the order."]}}),
         OrderNotCancelable),
        (httpx.Response(404, text="Not Found"), OrderNotFound),
    ],
)  # fmt: skip
def test_cancel_refusals(answer: httpx.Response, error: type[Exception]) -> None:
    venue = Venue()
    venue.on("DELETE", f"{ORDERS}/7", answer)

    with pytest.raises(error, match="broker_order_id=7"):
        broker(venue).cancel("7")


def test_replace_is_refused_without_a_request() -> None:
    venue = Venue()
    request = ReplaceOrderRequest(
        client_order_id="new-1", quantity=Decimal(5), time_in_force=TimeInForce.DAY
    )

    with pytest.raises(OrderRejected, match="modifies orders in place") as caught:
        broker(venue).replace("7", request)

    assert (caught.value.broker_order_id, caught.value.client_order_id) == ("7", "new-1")
    assert venue.requests == []


# -- rate limits, retries, secrets ------------------------------------------------------


def test_rate_limit_headers_feed_the_observer() -> None:
    venue = Venue()
    expiry_ms = int((NOW + timedelta(seconds=42)).timestamp() * 1000)
    venue.on("GET", f"{ORDERS}/1", ok({"order": made(1, NOW)}, **{
        "X-Ratelimit-Allowed": "120", "X-Ratelimit-Used": "15",
        "X-Ratelimit-Available": "105", "X-Ratelimit-Expiry": str(expiry_ms),
    }))  # fmt: skip
    seen: list[RateLimitInfo] = []

    broker(venue, observer=seen.append).get_order("1")

    reset = NOW + timedelta(seconds=42)
    assert seen == [RateLimitInfo(limit=120, remaining=105, reset_at=reset, status_code=200)]


def test_a_429_is_retried_and_then_succeeds() -> None:
    venue = Venue()
    venue.on("GET", f"{ORDERS}/1",
             httpx.Response(429, text="Rate limit exceeded",
                            headers={"X-Ratelimit-Available": "0", "X-Ratelimit-Expiry":
                                     str(int(NOW.timestamp()) + 5)}),
             ok({"order": made(1, NOW)}))  # fmt: skip
    seen: list[RateLimitInfo] = []
    waits: list[float] = []

    report = broker(venue, observer=seen.append, sleep=waits.append).get_order("1")

    assert report.broker_order_id == "1"
    reset = NOW + timedelta(seconds=5)
    assert seen[0] == RateLimitInfo(limit=None, remaining=0, reset_at=reset, status_code=429)
    assert waits == [5.0]


def test_a_429_out_of_attempts_is_rate_limited_with_when_to_return() -> None:
    venue = Venue()
    venue.on("POST", ORDERS, httpx.Response(429, text="Rate limit exceeded",
                                            headers={"Retry-After": "30"}))  # fmt: skip

    with pytest.raises(RateLimited) as caught:
        broker(venue, max_attempts=2).place(LIMIT_BUY)

    assert caught.value.retry_at == NOW + timedelta(seconds=30)
    assert len(venue.requests) == 2  # a 429 proves nothing was placed: sent again


def test_the_token_is_never_in_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    venue = Venue()
    venue.on("GET", f"{ORDERS}/1", httpx.Response(503, text="down"))
    venue.on("POST", ORDERS, httpx.Response(401, text="Invalid Access Token"))
    adapter = broker(venue)

    with caplog.at_level(logging.DEBUG), pytest.raises(BrokerUnavailable) as unavailable:
        adapter.get_order("1")
    with pytest.raises(AuthenticationFailed) as refused:
        adapter.place(LIMIT_BUY)

    for shown in (repr(adapter), str(unavailable.value), str(refused.value), caplog.text,
                  repr(adapter._http._auth)):  # fmt: skip
        assert TOKEN not in shown
    assert "retrying" in caplog.text


def test_from_url_takes_the_host_with_or_without_v1() -> None:
    for base in ("https://sandbox.tradier.com", "https://sandbox.tradier.com/v1/"):
        adapter = TradierBroker.from_url(base, account_number=ACCOUNT, access_token=TOKEN)
        assert repr(adapter) == (
            "TradierBroker(base_url='https://sandbox.tradier.com', account='VA000000')"
        )
        adapter.close()
    with pytest.raises(ValueError, match="access token is empty"):
        TradierBroker.from_url("https://api.tradier.com", account_number=ACCOUNT, access_token="")
