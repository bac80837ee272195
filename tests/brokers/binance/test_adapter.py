"""The Binance adapter against a fake Binance over httpx.MockTransport, with its
documented payloads; every signed request's signature is checked by the fake."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import httpx
import pytest

from brokers.base import RateLimitInfo
from brokers.binance.adapter import BinanceBroker
from brokers.binance.signing import epoch_ms, sign
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.binance.test_filters import EXCHANGE_INFO
from tests.brokers.binance.test_parse import DOC_FULL, DOC_ORDER, DOC_TRADE

KEY = "test-api-key"
SECRET = "s3cr3t-Binance-Secret-do-not-leak"
NOW = datetime(2024, 1, 2, 15, 0, 30, tzinfo=UTC)
SERVER_AHEAD_MS = 1500
Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


class FakeBinance:
    """Routes by (method, path); checks the key header and signature; records requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/api/v3/time"): lambda r, q: _json(
                {"serverTime": epoch_ms(NOW) + SERVER_AHEAD_MS}
            ),
            ("GET", "/api/v3/exchangeInfo"): lambda r, q: _json(EXCHANGE_INFO),
        }
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        params = dict(parse_qsl(query))
        self.seen.append((request.method, request.url.path, params))
        assert request.headers["X-MBX-APIKEY"] == KEY
        if "signature" in params:
            unsigned, _, signature = query.rpartition("&signature=")
            assert sign(SECRET, unsigned) == signature
        return self.routes[(request.method, request.url.path)](request, params)

    def paths(self, path: str) -> list[dict[str, str]]:
        return [params for _, seen_path, params in self.seen if seen_path == path]


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def _error(code: int, msg: str, status: int = 400) -> Handler:
    return lambda r, q: _json({"code": code, "msg": msg}, status)


@pytest.fixture
def fake() -> FakeBinance:
    return FakeBinance()


def _broker(fake: FakeBinance, **kw: object) -> BinanceBroker:
    client = httpx.Client(base_url="https://api.binance.test", transport=httpx.MockTransport(fake))
    return BinanceBroker(client, api_key=KEY, secret_key=SECRET, now=lambda: NOW,
                         sleep=lambda s: None, **kw)  # type: ignore[arg-type]  # fmt: skip


def _limit(**kw: object) -> PlaceOrderRequest:
    fields: dict[str, object] = dict(
        client_order_id="ord-1", symbol="BTCUSDT", side=Side.BUY, quantity=Decimal("0.001"),
        order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, limit_price=Decimal("50000"),
    )  # fmt: skip
    fields.update(kw)
    return PlaceOrderRequest(**fields)  # type: ignore[arg-type]


def _full_answer(r: httpx.Request, q: dict[str, str]) -> httpx.Response:
    return httpx.Response(200, content=DOC_FULL.encode())


# -- placing ------------------------------------------------------------------------------


def test_place_signs_the_query_with_the_server_clock_and_returns_inline_fills(
    fake: FakeBinance,
) -> None:
    fake.routes[("POST", "/api/v3/order")] = _full_answer
    weights: list[int] = []
    order = _broker(fake, gate=weights.append).place(_limit())
    (sent,) = fake.paths("/api/v3/order")
    assert sent["newClientOrderId"] == "ord-1"
    assert (sent["type"], sent["timeInForce"], sent["price"], sent["quantity"]) == (
        "LIMIT", "GTC", "50000", "0.001",
    )  # fmt: skip
    assert sent["newOrderRespType"] == "FULL"
    assert sent["timestamp"] == str(epoch_ms(NOW) + SERVER_AHEAD_MS)
    assert sent["recvWindow"] == "5000"
    assert weights == [20, 1, 1]  # exchangeInfo, time, the order
    assert order.broker_order_id == "BTCUSDT:28"
    # Commission in the quote (USDT): money, so no asset named.
    assert [(f.broker_fill_id, f.fee_asset, f.fee_quantity) for f in order.fills] == [
        ("BTCUSDT:56", None, 0), ("BTCUSDT:57", None, 0),
    ]  # fmt: skip
    assert all(f.fee > 0 for f in order.fills)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (_limit(order_type=OrderType.MARKET, limit_price=None),
         {"type": "MARKET", "quantity": "0.001"}),
        (_limit(order_type=OrderType.MARKET, limit_price=None, quantity=None,
                notional=Decimal("25")), {"type": "MARKET", "quoteOrderQty": "25"}),
        (_limit(order_type=OrderType.STOP_LIMIT, stop_price=Decimal("49000"),
                time_in_force=TimeInForce.IOC),
         {"type": "STOP_LOSS_LIMIT", "price": "50000", "stopPrice": "49000",
          "timeInForce": "IOC"}),
        (_limit(order_type=OrderType.STOP, limit_price=None, stop_price=Decimal("49000")),
         {"type": "STOP_LOSS", "stopPrice": "49000", "quantity": "0.001"}),
    ],
)  # fmt: skip
def test_order_types_map_to_binance_parameters(
    fake: FakeBinance, request_: PlaceOrderRequest, expected: dict[str, str]
) -> None:
    fake.routes[("POST", "/api/v3/order")] = _full_answer
    _broker(fake).place(request_)
    (sent,) = fake.paths("/api/v3/order")
    assert {key: sent.get(key) for key in expected} == expected


@pytest.mark.parametrize("cid", ["", "x" * 37, "has space", "dot.ted"])
def test_a_client_id_binance_would_refuse_is_refused_before_sending(
    fake: FakeBinance, cid: str
) -> None:
    with pytest.raises(ValueError, match="client ids"):
        _broker(fake).place(_limit(client_order_id=cid))
    assert fake.seen == []


@pytest.mark.parametrize(
    ("request_", "match"),
    [(_limit(time_in_force=TimeInForce.DAY), "time in force day"),
     (_limit(order_class=OrderClass.BRACKET), "order class bracket"),
     (_limit(quantity=Decimal("0.00001")), "LOT_SIZE: quantity 0.00001 is below minQty 0.0001")],
)  # fmt: skip
def test_orders_binance_cannot_take_are_rejected_before_the_post(
    fake: FakeBinance, request_: PlaceOrderRequest, match: str
) -> None:
    with pytest.raises(OrderRejected, match=match) as caught:
        _broker(fake).place(request_)
    assert caught.value.client_order_id == "ord-1"
    assert fake.paths("/api/v3/order") == []


def test_exchange_info_is_cached_per_symbol(fake: FakeBinance) -> None:
    fake.routes[("POST", "/api/v3/order")] = _full_answer
    broker = _broker(fake)
    broker.place(_limit())
    broker.place(_limit(client_order_id="ord-2"))
    assert broker.symbol_assets("BTCUSDT") == ("BTC", "USDT")
    assert broker.holding_of("BTCUSDT") == "BTC"  # positions are asset balances
    assert broker.quoted_in("BTCUSDT") == "USDT"  # trading it moves the USDT balance too
    assert len(fake.paths("/api/v3/exchangeInfo")) == 1


@pytest.mark.parametrize(
    "answer",
    [
        lambda r, q: httpx.Response(503, content=b"Service Unavailable"),
        _error(-1007, "Timeout waiting for response from backend server. Send status unknown; "
               "execution status unknown.", 408),
        _error(-1000, "Unknown error, please check your request or try again later.", 503),
    ],
)  # fmt: skip
def test_an_unknown_outcome_is_answer_lost_and_never_resent(
    fake: FakeBinance, answer: Handler
) -> None:
    fake.routes[("POST", "/api/v3/order")] = answer
    with pytest.raises(AnswerLost) as caught:
        _broker(fake).place(_limit())
    assert caught.value.client_order_id == "ord-1"
    assert len(fake.paths("/api/v3/order")) == 1


def test_a_timeout_after_sending_is_answer_lost(fake: FakeBinance) -> None:
    def timeout(r: httpx.Request, q: dict[str, str]) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=r)

    fake.routes[("POST", "/api/v3/order")] = timeout
    with pytest.raises(AnswerLost):
        _broker(fake).place(_limit())
    assert len(fake.paths("/api/v3/order")) == 1


def test_a_connect_error_is_resent_since_nothing_left(fake: FakeBinance) -> None:
    calls: list[int] = []

    def flaky(r: httpx.Request, q: dict[str, str]) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=r)
        return _full_answer(r, q)

    fake.routes[("POST", "/api/v3/order")] = flaky
    assert _broker(fake).place(_limit()).broker_order_id == "BTCUSDT:28"
    assert len(calls) == 2


def test_a_stale_timestamp_resyncs_the_clock_and_resends_once(fake: FakeBinance) -> None:
    answers = [_error(-1021, "Timestamp for this request was 1000ms ahead of the server's time."),
               _full_answer]  # fmt: skip
    fake.routes[("POST", "/api/v3/order")] = lambda r, q: answers.pop(0)(r, q)
    assert _broker(fake).place(_limit()).broker_order_id == "BTCUSDT:28"
    assert len(fake.paths("/api/v3/time")) == 2
    assert len(fake.paths("/api/v3/order")) == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (_error(-2010, "Duplicate order sent."), DuplicateClientOrderId),
        (_error(-2010, "Account has insufficient balance for requested action."), OrderRejected),
        (_error(-1013, "Filter failure: PRICE_FILTER"), OrderRejected),
        (_error(-1102, "Mandatory parameter 'price' was not sent."), OrderRejected),
        (_error(-2015, "Invalid API-key, IP, or permissions for action.", 401),
         AuthenticationFailed),
        (_error(-1022, "Signature for this request is not valid."), AuthenticationFailed),
    ],
)  # fmt: skip
def test_placement_refusals(fake: FakeBinance, answer: Handler, error: type[BrokerError]) -> None:
    fake.routes[("POST", "/api/v3/order")] = answer
    with pytest.raises(error) as caught:
        _broker(fake).place(_limit())
    assert type(caught.value) is error
    assert caught.value.broker == "binance"


# rest-api.md, POST /api/v3/order/cancelReplace: both parts succeeded.
DOC_CANCEL_REPLACE = {
    "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
    "cancelResponse": {"symbol": "BTCUSDT", "origClientOrderId": "DnLo3vTAQcjha43lAZhZ0y",
        "orderId": 9, "orderListId": -1, "clientOrderId": "osxN3JXAtJvKvCqGeMWMVR",
        "transactTime": 1684804350068, "price": "0.01000000", "origQty": "0.000100",
        "executedQty": "0.00000000", "origQuoteOrderQty": "0.000000",
        "cummulativeQuoteQty": "0.00000000", "status": "CANCELED", "timeInForce": "GTC",
        "type": "LIMIT", "side": "SELL", "selfTradePreventionMode": "NONE"},
    "newOrderResponse": {"symbol": "BTCUSDT", "orderId": 10, "orderListId": -1,
        "clientOrderId": "wOceeeOzNORyLiQfw7jd8S", "transactTime": 1652928801803,
        "price": "0.02000000", "origQty": "0.040000", "executedQty": "0.00000000",
        "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "0.00000000",
        "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
        "workingTime": 1669277163808, "fills": [], "selfTradePreventionMode": "NONE"},
}  # fmt: skip
REPLACE = ReplaceOrderRequest("wOceeeOzNORyLiQfw7jd8S", Decimal("0.04"), TimeInForce.GTC,
                              Decimal("50000"))  # fmt: skip


def _working_order(r: httpx.Request, q: dict[str, str]) -> httpx.Response:
    return _json({**json.loads(DOC_ORDER), "symbol": "BTCUSDT", "orderId": 9, "side": "BUY"})


def test_replace_cancels_and_places_in_one_request(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = _working_order
    fake.routes[("POST", "/api/v3/order/cancelReplace")] = lambda r, q: _json(DOC_CANCEL_REPLACE)
    report = _broker(fake).replace("BTCUSDT:9", REPLACE)
    (sent,) = fake.paths("/api/v3/order/cancelReplace")
    assert {k: sent[k] for k in ("cancelReplaceMode", "cancelOrderId", "side", "type")} == {
        "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": "9", "side": "BUY",
        "type": "LIMIT",
    }  # fmt: skip
    assert (sent["quantity"], sent["price"], sent["newClientOrderId"]) == (
        "0.04", "50000", "wOceeeOzNORyLiQfw7jd8S",
    )  # fmt: skip
    assert (report.broker_order_id, report.replaces) == ("BTCUSDT:10", "BTCUSDT:9")


@pytest.mark.parametrize(
    ("code", "msg", "match"),
    [(-2022, "Order cancel-replace failed.", "cancel-replace failed"),
     (-2021, "Order cancel-replace partially failed.", "the old order was canceled")],
)  # fmt: skip
def test_replace_failures_are_rejections(
    fake: FakeBinance, code: int, msg: str, match: str
) -> None:
    fake.routes[("GET", "/api/v3/order")] = _working_order
    fake.routes[("POST", "/api/v3/order/cancelReplace")] = _error(code, msg, 409)
    with pytest.raises(OrderRejected, match=match) as caught:
        _broker(fake).replace("BTCUSDT:9", REPLACE)
    assert caught.value.broker_order_id == "BTCUSDT:9"


def test_from_url_owns_its_client_and_close_closes_it() -> None:
    broker = BinanceBroker.from_url(
        "https://api.binance.test", api_key=KEY, secret_key=SECRET, timeout_s=2.0,
        max_attempts=2, max_retry_wait_s=1.0,
    )  # fmt: skip
    broker.close()
    assert broker._client.is_closed


# -- looking up and cancelling ------------------------------------------------------------


def test_get_order_splits_the_symbol_out_of_the_id(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(200, content=DOC_ORDER)
    weights: list[int] = []
    order = _broker(fake, gate=weights.append).get_order("LTCBTC:1")
    assert fake.paths("/api/v3/order")[0]["symbol"] == "LTCBTC"
    assert fake.paths("/api/v3/order")[0]["orderId"] == "1"
    assert order.status is OrderStatus.NEW
    assert weights[-1] == 4


def test_get_order_by_client_id_needs_the_symbol(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(200, content=DOC_ORDER)
    broker = _broker(fake)
    with pytest.raises(ValueError, match="symbol"):
        broker.get_order_by_client_id("myOrder1")
    assert broker.get_order_by_client_id("myOrder1", symbol="LTCBTC").client_order_id == "myOrder1"
    assert fake.paths("/api/v3/order")[0]["origClientOrderId"] == "myOrder1"


def test_a_malformed_broker_id_is_a_value_error_naming_it(fake: FakeBinance) -> None:
    with pytest.raises(ValueError, match="'28'"):
        _broker(fake).get_order("28")
    with pytest.raises(ValueError, match="'BTCUSDT-28'"):
        _broker(fake).cancel("BTCUSDT-28")


@pytest.mark.parametrize(
    ("answer", "error"),
    [(_error(-2013, "Order does not exist."), OrderNotFound),
     (_error(-2011, "Unknown order sent."), OrderNotFound),
     (_error(-2011, "Order was canceled or expired."), OrderNotCancelable)],
)  # fmt: skip
def test_lookup_and_cancel_refusals(
    fake: FakeBinance, answer: Handler, error: type[BrokerError]
) -> None:
    fake.routes[("DELETE", "/api/v3/order")] = answer
    with pytest.raises(error) as caught:
        _broker(fake).cancel("BTCUSDT:28")
    assert caught.value.broker_order_id == "BTCUSDT:28"


def test_a_read_is_retried_on_5xx_then_unavailable(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(502, content=b"bad")
    with pytest.raises(BrokerUnavailable):
        _broker(fake, max_attempts=3).get_order("BTCUSDT:28")
    assert len(fake.paths("/api/v3/order")) == 3


def test_a_body_that_is_not_json_is_malformed_with_an_excerpt(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(200, content=b"<html>")
    with pytest.raises(MalformedResponse, match="<html>"):
        _broker(fake).get_order("BTCUSDT:28")


# -- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 418])
def test_429_and_418_are_rate_limited_until_retry_after_and_not_retried(
    fake: FakeBinance, status: int
) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: _json(
        {"code": -1003, "msg": "Too many requests."}, status, {"Retry-After": "120"}
    )
    with pytest.raises(RateLimited) as caught:
        _broker(fake).get_order("BTCUSDT:28")
    assert caught.value.retry_at == NOW + timedelta(seconds=120)
    assert len(fake.paths("/api/v3/order")) == 1


def test_too_many_new_orders_waits_for_its_10_s_window_and_blocks_no_other_request(
    fake: FakeBinance,
) -> None:
    """-1015 counts the account's new orders (50 per 10 s), not the request weight, and
    Binance sends no Retry-After with it: the placement comes back at the window's end and
    the shared budget is not told of a 429 (the account's reads and cancels go on)."""
    fake.routes[("POST", "/api/v3/order")] = lambda r, q: _json(
        {"code": -1015, "msg": "Too many new orders; current limit is 50 orders per 10 SECOND."},
        429, {"X-MBX-USED-WEIGHT-1M": "12"},
    )  # fmt: skip
    seen: list[RateLimitInfo] = []
    with pytest.raises(RateLimited) as caught:
        _broker(fake, observer=seen.append).place(_limit())
    assert caught.value.retry_at == datetime(2024, 1, 2, 15, 0, 40, tzinfo=UTC)
    assert seen == [RateLimitInfo(6000, 5988, datetime(2024, 1, 2, 15, 1, tzinfo=UTC), 200)]
    assert len(fake.paths("/api/v3/order")) == 1


def test_the_observer_learns_the_weight_used_against_the_exchange_s_limit(
    fake: FakeBinance,
) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(
        200, content=DOC_ORDER, headers={"X-MBX-USED-WEIGHT-1M": "46"}
    )
    seen: list[RateLimitInfo] = []
    _broker(fake, observer=seen.append).get_order("LTCBTC:1")
    assert seen == [RateLimitInfo(6000, 5954, datetime(2024, 1, 2, 15, 1, tzinfo=UTC), 200)]


def test_on_request_is_told_each_endpoint(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(200, content=DOC_ORDER)
    labels: list[tuple[str, int | None]] = []
    _broker(fake, on_request=lambda e, s, t: labels.append((e, s))).get_order("LTCBTC:1")
    assert labels == [("GET /api/v3/time", 200), ("GET /api/v3/order", 200)]


def test_the_secret_appears_in_no_repr_error_or_log(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    fake.routes[("GET", "/api/v3/order")] = lambda r, q: httpx.Response(500, content=b"oops")
    broker = _broker(fake, max_attempts=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(BrokerUnavailable) as caught:
        broker.get_order("BTCUSDT:28")
    assert SECRET not in repr(broker)
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


# -- listing ------------------------------------------------------------------------------

START = datetime(2024, 1, 1, tzinfo=UTC)


def _order_json(
    symbol: str, order_id: int, at_ms: int, status: str = "FILLED"
) -> dict[str, object]:
    return {**json.loads(DOC_ORDER), "symbol": symbol, "orderId": order_id, "time": at_ms,
            "updateTime": at_ms, "status": status}  # fmt: skip


def _windowed_route(items: dict[str, list[dict[str, object]]], id_key: str) -> Handler:
    """A history endpoint: the window must be <= 24 h and never combined with fromId."""

    def answer(r: httpx.Request, q: dict[str, str]) -> httpx.Response:
        cursor = q.get("fromId", q.get("orderId"))
        if cursor is not None:  # from an id on, never with a time range
            assert "startTime" not in q
            assert "endTime" not in q
            found = [i for i in items[q["symbol"]] if int(str(i[id_key])) >= int(cursor)]
        else:
            start, end = int(q["startTime"]), int(q["endTime"])
            assert end - start <= 24 * 3600 * 1000
            found = [i for i in items[q["symbol"]] if start <= int(str(i["time"])) <= end]
        found.sort(key=lambda i: int(str(i[id_key])))
        return _json(found[: int(q["limit"])])

    return answer


def _history() -> dict[str, list[dict[str, object]]]:
    """Orders over three days in two symbols, with ties in one millisecond."""
    base = epoch_ms(START)
    hour = 3600 * 1000
    btc = [_order_json("BTCUSDT", n, base + n * 7 * hour) for n in range(1, 10)]
    btc += [_order_json("BTCUSDT", n, base + 65 * hour) for n in range(10, 14)]  # 4 ties
    eth = [_order_json("ETHUSDT", n, base + n * 13 * hour, "NEW") for n in range(1, 6)]
    return {"BTCUSDT": btc, "ETHUSDT": eth}


def test_list_orders_visits_every_order_once_across_symbols_windows_and_pages(
    fake: FakeBinance,
) -> None:
    history = _history()
    fake.routes[("GET", "/api/v3/allOrders")] = _windowed_route(history, "orderId")
    broker = _broker(fake)
    seen: list[str] = []
    token: str | None = None
    for _ in range(100):
        page = broker.list_orders(after=START, until=START + timedelta(days=3), page_size=2,
                                  page_token=token, symbols=["BTCUSDT", "ETHUSDT"])  # fmt: skip
        seen += [o.broker_order_id for o in page.items]
        token = page.next_token
        if token is None:
            break
    expected = [f"{s}:{o['orderId']}" for s, orders in history.items() for o in orders]
    assert seen == expected  # each once, oldest first within a symbol
    requests = fake.paths("/api/v3/allOrders")
    assert any("orderId" in q for q in requests)  # full pages continue by id
    assert {q["symbol"] for q in requests if "startTime" in q} == {"BTCUSDT", "ETHUSDT"}


def test_closed_keeps_only_terminal_orders(fake: FakeBinance) -> None:
    at = epoch_ms(START)
    fake.routes[("GET", "/api/v3/allOrders")] = lambda r, q: _json(
        [_order_json("BTCUSDT", 1, at, "FILLED"), _order_json("BTCUSDT", 2, at, "NEW"),
         _order_json("BTCUSDT", 3, at, "EXPIRED_IN_MATCH")]
    )  # fmt: skip
    window = {"after": START, "until": START + timedelta(hours=1), "symbols": ["BTCUSDT"]}
    page = _broker(fake).list_orders(status="closed", **window)  # type: ignore[arg-type]
    assert [o.broker_order_id for o in page.items] == ["BTCUSDT:1", "BTCUSDT:3"]


def test_after_none_lists_the_last_24_hours(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/allOrders")] = lambda r, q: _json([])
    page = _broker(fake).list_orders(symbols=["BTCUSDT"])
    (sent,) = fake.paths("/api/v3/allOrders")
    assert int(sent["endTime"]) == epoch_ms(NOW)
    assert int(sent["endTime"]) - int(sent["startTime"]) == 24 * 3600 * 1000 - 1
    assert page.next_token is None


def test_no_symbols_is_an_empty_last_page(fake: FakeBinance) -> None:
    page = _broker(fake).list_orders(symbols=[])
    assert (page.items, page.next_token) == ((), None)
    assert fake.seen == []


def test_open_orders_are_listed_one_symbol_per_page(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/openOrders")] = lambda r, q: _json(
        [_order_json(q["symbol"], 7, epoch_ms(START), "NEW")]
    )
    broker = _broker(fake)
    first = broker.list_orders(status="open", symbols=["BTCUSDT", "ETHUSDT"])
    second = broker.list_orders(status="open", page_token=first.next_token,
                                symbols=["BTCUSDT", "ETHUSDT"])  # fmt: skip
    assert [o.broker_order_id for o in first.items + second.items] == ["BTCUSDT:7", "ETHUSDT:7"]
    assert second.next_token is None


def test_an_unreadable_order_is_kept_as_malformed(fake: FakeBinance) -> None:
    broken = _order_json("BTCUSDT", 2, epoch_ms(START))
    del broken["side"]
    fake.routes[("GET", "/api/v3/allOrders")] = lambda r, q: _json(
        [_order_json("BTCUSDT", 1, epoch_ms(START)), broken]
    )
    page = _broker(fake).list_orders(after=START, until=START + timedelta(hours=1),
                                     symbols=["BTCUSDT"])  # fmt: skip
    assert [o.broker_order_id for o in page.items] == ["BTCUSDT:1"]
    (malformed,) = page.malformed
    assert "side" in malformed.reason


def _trade_json(trade_id: int, at_ms: int) -> dict[str, object]:
    return {**json.loads(DOC_TRADE), "symbol": "BNBBTC", "id": trade_id, "time": at_ms}


def test_list_fills_pages_and_fill_cursor_continues_after_a_fill(fake: FakeBinance) -> None:
    base = epoch_ms(START)
    trades = [_trade_json(n, base + (n // 2) * 1000) for n in range(1, 8)]  # pairs share a ms
    fake.routes[("GET", "/api/v3/myTrades")] = _windowed_route({"BNBBTC": trades}, "id")
    bnb_btc = {**EXCHANGE_INFO["symbols"][0], "symbol": "BNBBTC", "baseAsset": "BNB",
               "quoteAsset": "BTC"}  # fmt: skip
    info = {**EXCHANGE_INFO, "symbols": [bnb_btc]}
    fake.routes[("GET", "/api/v3/exchangeInfo")] = lambda r, q: _json(info)
    broker = _broker(fake)
    seen: list[FillReport] = []
    token: str | None = None
    kw = {"after": START, "until": START + timedelta(hours=1), "symbols": ["BNBBTC"]}
    while True:
        page = broker.list_fills(page_size=3, page_token=token, **kw)  # type: ignore[arg-type]
        seen += page.items
        if (token := page.next_token) is None:
            break
    assert [f.broker_fill_id for f in seen] == [f"BNBBTC:{n}" for n in range(1, 8)]
    assert seen[0].broker_order_id == "BNBBTC:100234"
    # A buy's commission in the asset bought (BNB): a quantity the position does not get.
    assert (seen[0].fee, seen[0].fee_quantity, seen[0].fee_asset) == (0, Decimal("10.1"), None)
    resumed = broker.list_fills(page_token=broker.fill_cursor(seen[2]), **kw)  # type: ignore[arg-type]
    assert [f.broker_fill_id for f in resumed.items] == [f"BNBBTC:{n}" for n in range(4, 8)]


def test_a_token_from_a_sync_without_an_end_still_reaches_later_trades(
    fake: FakeBinance,
) -> None:
    """A forward sync names no end: a full page, then an empty one, leaves the full page's
    token stored; a trade made later is read from it (the token is not bound to then)."""
    clock = [START + timedelta(hours=2)]
    trades = [_trade_json(n, epoch_ms(START) + n * 1000) for n in range(1, 4)]
    fake.routes[("GET", "/api/v3/myTrades")] = _windowed_route({"BNBBTC": trades}, "id")
    bnb_btc = {**EXCHANGE_INFO["symbols"][0], "symbol": "BNBBTC", "baseAsset": "BNB",
               "quoteAsset": "BTC"}  # fmt: skip
    fake.routes[("GET", "/api/v3/exchangeInfo")] = lambda r, q: _json(
        {**EXCHANGE_INFO, "symbols": [bnb_btc]}
    )
    client = httpx.Client(base_url="https://api.binance.test", transport=httpx.MockTransport(fake))
    broker = BinanceBroker(client, api_key=KEY, secret_key=SECRET, now=lambda: clock[0],
                           sleep=lambda s: None)  # fmt: skip
    full = broker.list_fills(after=START, page_size=3, symbols=["BNBBTC"])
    assert [f.broker_fill_id for f in full.items] == ["BNBBTC:1", "BNBBTC:2", "BNBBTC:3"]
    stored = full.next_token
    assert stored is not None
    empty = broker.list_fills(page_token=stored, page_size=3, symbols=["BNBBTC"])
    assert (empty.items, empty.next_token) == ((), None)  # the sync ends; the token stays
    clock[0] += timedelta(hours=1)
    trades.append(_trade_json(4, epoch_ms(clock[0]) - 1000))
    later = broker.list_fills(page_token=stored, page_size=3, symbols=["BNBBTC"])
    assert [f.broker_fill_id for f in later.items] == ["BNBBTC:4"]


def test_positions_are_assets_held(fake: FakeBinance) -> None:
    fake.routes[("GET", "/api/v3/account")] = lambda r, q: _json(
        {"balances": [{"asset": "BTC", "free": "0.5", "locked": "0.25"},
                      {"asset": "ETH", "free": "0.00000000", "locked": "0.00000000"}]}
    )  # fmt: skip
    positions = _broker(fake).list_positions()
    assert [(p.symbol, p.quantity) for p in positions] == [("BTC", Decimal("0.75"))]
