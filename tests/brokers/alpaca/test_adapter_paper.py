"""The Alpaca adapter against the paper exchange over real HTTP, with faults switched on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from brokers.alpaca.adapter import AlpacaBroker
from brokers.alpaca.parse import to_datetime
from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    DuplicateClientOrderId,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport, PlaceOrderRequest

pytestmark = pytest.mark.integration

SYMBOL = "AAPL"
MARKET_PRICE = Decimal("190.00")


class Recorder:
    """Records the adapter's retry waits (and really waits: these are real servers)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.rate_limits: list[RateLimitInfo] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def connect(paper_exchange: Any, recorder: Recorder) -> Iterator[Callable[..., AlpacaBroker]]:
    """Adapters on the exchange, each with its own client, closed after the test."""
    brokers: list[AlpacaBroker] = []

    def make(**kw: Any) -> AlpacaBroker:
        kw.setdefault("key_id", paper_exchange.key_id)
        kw.setdefault("secret_key", paper_exchange.secret_key)
        kw.setdefault("timeout_s", 5.0)
        kw.setdefault("max_retry_wait_s", 1.5)
        kw.setdefault("sleep", recorder.sleep)
        kw.setdefault("observer", recorder.rate_limits.append)
        broker = AlpacaBroker.from_url(paper_exchange.base_url, **kw)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def broker(connect: Callable[..., AlpacaBroker], paper_exchange: Any) -> AlpacaBroker:
    paper_exchange.set_price(SYMBOL, str(MARKET_PRICE))
    return connect()


def new_cid() -> str:
    return f"test-{uuid.uuid4()}"


def resting_limit(cid: str | None = None, qty: str = "3") -> PlaceOrderRequest:
    """A buy far below the market, so it rests until canceled."""
    return PlaceOrderRequest(
        client_order_id=cid or new_cid(),
        symbol=SYMBOL,
        side=Side.BUY,
        quantity=Decimal(qty),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal("100.00"),
    )


def market(side: Side, qty: str, cid: str | None = None) -> PlaceOrderRequest:
    return PlaceOrderRequest(cid or new_cid(), SYMBOL, side, Decimal(qty))


def posts(paper_exchange: Any) -> int:
    """How many placements the exchange has received."""
    count: int = paper_exchange.requests()["by_route"].get("POST /v2/orders", 0)
    return count


def truth_with_cid(paper_exchange: Any, cid: str) -> list[dict[str, Any]]:
    return [o for o in paper_exchange.truth() if o["client_order_id"] == cid]


def true_position(paper_exchange: Any, symbol: str) -> Decimal:
    """The exchange's position in ``symbol``, from the fills in its ground truth."""
    signed = {"buy": 1, "sell": -1}
    return sum(
        (
            signed[o["side"]] * Decimal(o["filled_qty"])
            for o in paper_exchange.truth()
            if o["symbol"] == symbol
        ),
        Decimal(0),
    )


def test_place_get_and_look_up_by_client_id(paper_exchange: Any, broker: AlpacaBroker) -> None:
    paper_exchange.freeze_market(True)
    request = resting_limit()

    placed = broker.place(request)
    # submitted_at is final once the order is routed (acknowledged), as at Alpaca.
    paper_exchange.wait_for(
        lambda: paper_exchange.truth_order(placed.broker_order_id)["status"] == "new"
    )
    fetched = broker.get_order(placed.broker_order_id)
    by_cid = broker.get_order_by_client_id(request.client_order_id)

    truth = paper_exchange.truth_order(placed.broker_order_id)
    assert placed.client_order_id == request.client_order_id
    assert placed.status is OrderStatus.NEW
    assert placed.raw_status in ("accepted", "new")
    for report in (fetched, by_cid):
        assert report.broker_order_id == placed.broker_order_id == truth["id"]
        assert report.client_order_id == request.client_order_id
        assert report.symbol == SYMBOL
        assert report.side is Side.BUY
        assert report.order_type is OrderType.LIMIT
        assert report.time_in_force is TimeInForce.GTC
        assert report.quantity == Decimal(3)
        assert report.limit_price == Decimal(100)
        assert report.filled_quantity == 0
        assert report.average_fill_price is None
        assert report.status is OrderStatus.NEW
        assert report.submitted_at == to_datetime(truth["submitted_at"], "submitted_at")
        assert report.raw_status in ("accepted", "new")  # accepted, then new, as at Alpaca


def test_get_unknown_order_is_not_found(broker: AlpacaBroker) -> None:
    with pytest.raises(OrderNotFound) as by_id:
        broker.get_order(str(uuid.uuid4()))
    with pytest.raises(OrderNotFound) as by_cid:
        broker.get_order_by_client_id("never-placed")

    assert by_id.value.status_code == 404
    assert by_cid.value.client_order_id == "never-placed"


def test_list_orders_pages_match_truth(paper_exchange: Any, broker: AlpacaBroker) -> None:
    paper_exchange.freeze_market(True)
    placed = [broker.place(resting_limit()).broker_order_id for _ in range(7)]
    placed.append(broker.place(market(Side.BUY, "1")).broker_order_id)
    # An order's submitted_at moves to when it is routed (its acknowledgement): listed
    # before that, it would show up again on a later page. Page once all are routed.
    paper_exchange.wait_for(
        lambda: all(paper_exchange.truth_order(i)["status"] != "accepted" for i in placed)
    )

    listed: list[OrderReport] = []
    token = None
    pages = 0
    while True:
        page = broker.list_orders(status="all", page_size=3, page_token=token)
        pages += 1
        assert page.malformed == ()
        listed.extend(page.items)
        token = page.next_token
        if token is None:
            break

    truth = [o for o in paper_exchange.truth() if not o.get("forgotten")]
    truth.sort(key=lambda o: o["submitted_at"])
    assert pages >= 3
    assert [o.broker_order_id for o in listed] == [o["id"] for o in truth]
    assert set(placed) <= {o.broker_order_id for o in listed}
    for report, real in zip(listed, truth, strict=True):
        assert report.client_order_id == real["client_order_id"]
        assert report.quantity == Decimal(real["qty"])
        assert report.submitted_at == to_datetime(real["submitted_at"], "submitted_at")


def test_list_orders_open_only(paper_exchange: Any, broker: AlpacaBroker) -> None:
    paper_exchange.freeze_market(True)
    resting = broker.place(resting_limit())
    gone = broker.place(resting_limit())
    broker.cancel(gone.broker_order_id)
    paper_exchange.wait_for(
        lambda: paper_exchange.truth_order(gone.broker_order_id)["status"] == "canceled"
    )

    page = broker.list_orders(status="open")

    assert [o.broker_order_id for o in page.items] == [resting.broker_order_id]


def test_cancel_a_resting_limit_order(paper_exchange: Any, broker: AlpacaBroker) -> None:
    paper_exchange.freeze_market(True)
    order = broker.place(resting_limit())

    broker.cancel(order.broker_order_id)

    paper_exchange.wait_for(
        lambda: paper_exchange.truth_order(order.broker_order_id)["status"] == "canceled"
    )
    report = broker.get_order(order.broker_order_id)
    assert report.status is OrderStatus.CANCELED
    assert report.canceled_at is not None
    with pytest.raises(OrderNotCancelable) as again:
        broker.cancel(order.broker_order_id)
    assert again.value.broker_order_id == order.broker_order_id
    with pytest.raises(OrderNotFound):
        broker.cancel(str(uuid.uuid4()))


def test_fills_and_positions_match_truth(paper_exchange: Any, broker: AlpacaBroker) -> None:
    bought = broker.place(market(Side.BUY, "10"))
    sold = broker.place(market(Side.SELL, "4"))
    for order in (bought, sold):
        paper_exchange.wait_for(
            lambda o=order: paper_exchange.truth_order(o.broker_order_id)["status"] == "filled"
        )

    fills: list[FillReport] = []
    token = None
    while True:
        page = broker.list_fills(page_size=2, page_token=token)
        assert page.malformed == ()
        fills.extend(page.items)
        token = page.next_token
        if token is None:
            break

    for order, side in ((bought, Side.BUY), (sold, Side.SELL)):
        truth = paper_exchange.truth_order(order.broker_order_id)
        mine = [f for f in fills if f.broker_order_id == order.broker_order_id]
        # Activity ids order by millisecond, then at random (as Alpaca's): compare as sets.
        assert sorted(
            (f.broker_fill_id, f.quantity, f.price, f.filled_at, f.side, f.symbol) for f in mine
        ) == sorted(
            (
                t["id"],
                Decimal(t["qty"]),
                Decimal(t["price"]),
                to_datetime(t["time"], "time"),
                side,
                SYMBOL,
            )
            for t in truth["fills"]
        )
        assert sum(f.quantity for f in mine) == Decimal(truth["qty"])
        report = broker.get_order(order.broker_order_id)
        assert report.status is OrderStatus.FILLED
        assert report.filled_quantity == Decimal(truth["filled_qty"])
        assert report.average_fill_price == Decimal(truth["filled_avg_price"])

    positions = {p.symbol: p for p in broker.list_positions()}
    assert positions[SYMBOL].quantity == true_position(paper_exchange, SYMBOL)
    assert positions[SYMBOL].average_entry_price is not None


def test_short_position_is_negative(paper_exchange: Any, broker: AlpacaBroker) -> None:
    order = broker.place(market(Side.SELL, "2"))
    paper_exchange.wait_for(
        lambda: paper_exchange.truth_order(order.broker_order_id)["status"] == "filled"
    )

    positions = {p.symbol: p.quantity for p in broker.list_positions()}

    assert positions[SYMBOL] == true_position(paper_exchange, SYMBOL)
    assert positions[SYMBOL] < 0


def test_duplicate_client_order_id(paper_exchange: Any, broker: AlpacaBroker) -> None:
    paper_exchange.freeze_market(True)
    request = resting_limit()
    broker.place(request)

    with pytest.raises(DuplicateClientOrderId) as caught:
        broker.place(request)

    assert caught.value.client_order_id == request.client_order_id
    assert len(truth_with_cid(paper_exchange, request.client_order_id)) == 1


def test_wrong_secret_is_authentication_failed(
    paper_exchange: Any, connect: Callable[..., AlpacaBroker]
) -> None:
    impostor = connect(secret_key="not-the-secret")
    orders_before = len(paper_exchange.truth())

    with pytest.raises(AuthenticationFailed):
        impostor.list_orders()
    with pytest.raises(AuthenticationFailed) as placing:
        impostor.place(resting_limit())

    assert placing.value.status_code == 401
    assert len(paper_exchange.truth()) == orders_before


def test_get_retries_two_5xx(paper_exchange: Any, broker: AlpacaBroker, recorder: Recorder) -> None:
    paper_exchange.freeze_market(True)
    order = broker.place(resting_limit())
    before = paper_exchange.requests()
    paper_exchange.set_faults(next_5xx=2, routes=["GET /v2/orders"])

    report = broker.get_order(order.broker_order_id)

    after = paper_exchange.requests()
    assert report.broker_order_id == order.broker_order_id
    assert after["faulted"] - before["faulted"] == 2
    assert after["by_order"][order.broker_order_id] - before["by_order"][order.broker_order_id] == 3
    assert len(recorder.sleeps) == 2


def test_429_is_honoured(paper_exchange: Any, broker: AlpacaBroker, recorder: Recorder) -> None:
    paper_exchange.freeze_market(True)
    order = broker.place(resting_limit())
    paper_exchange.set_faults(next_429=1, routes=["GET /v2/orders"])

    report = broker.get_order_by_client_id(order.client_order_id or "")

    assert report.broker_order_id == order.broker_order_id
    assert len(recorder.sleeps) == 1
    assert 0 <= recorder.sleeps[0] <= 1.5
    limited = [info for info in recorder.rate_limits if info.status_code == 429]
    assert len(limited) == 1
    assert limited[0].remaining == 0
    assert limited[0].reset_at is not None
    assert recorder.rate_limits[-1].status_code == 200


def test_place_never_resubmits_after_a_5xx(
    paper_exchange: Any, broker: AlpacaBroker, recorder: Recorder
) -> None:
    paper_exchange.set_faults(next_5xx=1, routes=["POST /v2/orders"])
    request = market(Side.BUY, "1")
    posts_before = posts(paper_exchange)

    with pytest.raises(AnswerLost) as caught:
        broker.place(request)

    assert caught.value.client_order_id == request.client_order_id
    assert posts(paper_exchange) - posts_before == 1
    assert recorder.sleeps == []
    assert truth_with_cid(paper_exchange, request.client_order_id) == []
    # This 503 was not processed: the lookup that must follow finds nothing.
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id(request.client_order_id)


def test_lost_answer_is_resolved_by_client_id(
    paper_exchange: Any, connect: Callable[..., AlpacaBroker]
) -> None:
    paper_exchange.set_price(SYMBOL, str(MARKET_PRICE))
    paper_exchange.freeze_market(True)
    broker = connect(timeout_s=0.5)
    paper_exchange.set_faults(next_lose_response=1, timeout_s=2)
    request = resting_limit()
    posts_before = posts(paper_exchange)

    with pytest.raises(AnswerLost) as caught:
        broker.place(request)

    assert caught.value.client_order_id == request.client_order_id
    found = broker.get_order_by_client_id(request.client_order_id)
    assert found.client_order_id == request.client_order_id
    truth = truth_with_cid(paper_exchange, request.client_order_id)
    assert [o["id"] for o in truth] == [found.broker_order_id]
    assert posts(paper_exchange) - posts_before == 1


def test_read_timeout_on_get_is_retried(
    paper_exchange: Any, connect: Callable[..., AlpacaBroker]
) -> None:
    paper_exchange.set_price(SYMBOL, str(MARKET_PRICE))
    paper_exchange.freeze_market(True)
    broker = connect(timeout_s=0.5)
    order = broker.place(resting_limit())
    faulted_before = paper_exchange.requests()["faulted"]
    paper_exchange.set_faults(next_timeout=1, timeout_s=2, routes=["GET /v2/orders"])

    report = broker.get_order(order.broker_order_id)

    assert report.broker_order_id == order.broker_order_id
    assert paper_exchange.requests()["faulted"] - faulted_before == 1


def test_every_read_survives_random_faults(
    paper_exchange: Any, connect: Callable[..., AlpacaBroker]
) -> None:
    paper_exchange.set_price(SYMBOL, str(MARKET_PRICE))
    broker = connect(timeout_s=0.5, max_attempts=10, max_retry_wait_s=0.2)
    orders = [broker.place(market(Side.BUY, "1")) for _ in range(3)]
    for order in orders:
        paper_exchange.wait_for(
            lambda o=order: paper_exchange.truth_order(o.broker_order_id)["status"] == "filled"
        )
    faulted_before = paper_exchange.requests()["faulted"]
    paper_exchange.set_faults(
        p_5xx=0.15, p_429=0.1, p_timeout=0.03, timeout_s=1, latency_ms=[0, 20], routes=["GET /v2"]
    )

    for _ in range(2):
        for order in orders:
            assert broker.get_order(order.broker_order_id).status is OrderStatus.FILLED
            assert broker.get_order_by_client_id(order.client_order_id or "").filled_quantity == 1
        assert len(broker.list_orders(page_size=2).items) >= 1
        assert len(broker.list_fills().items) >= 3
        positions = {p.symbol: p.quantity for p in broker.list_positions()}
        assert positions[SYMBOL] == true_position(paper_exchange, SYMBOL)

    assert paper_exchange.requests()["faulted"] > faulted_before


def test_secret_is_not_logged_over_real_http(
    paper_exchange: Any, broker: AlpacaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    paper_exchange.freeze_market(True)
    paper_exchange.set_faults(next_5xx=1, routes=["GET /v2/orders"])

    with caplog.at_level(logging.DEBUG):
        order = broker.place(resting_limit())
        broker.get_order(order.broker_order_id)
        with pytest.raises(OrderNotFound) as caught:
            broker.get_order("missing")

    assert caplog.records
    assert paper_exchange.secret_key not in repr(broker)
    assert paper_exchange.secret_key not in f"{caught.value!s} {caught.value!r}"
    for record in caplog.records:
        assert paper_exchange.secret_key not in record.getMessage()


# -- the exchange as harsh as Alpaca: accounts, buying power, ties, sessions, late fills --


def _all_orders(broker: AlpacaBroker, page_size: int) -> list[OrderReport]:
    listed: list[OrderReport] = []
    token = None
    for _ in range(100):
        page = broker.list_orders(status="all", page_size=page_size, page_token=token)
        assert page.malformed == ()
        listed.extend(page.items)
        token = page.next_token
        if token is None:
            return listed
    raise AssertionError("list_orders paging did not end")


def _all_fills(broker: AlpacaBroker, page_token: str | None = None) -> list[FillReport]:
    fills: list[FillReport] = []
    token = page_token
    for _ in range(100):
        page = broker.list_fills(page_size=2, page_token=token)
        assert page.malformed == ()
        fills.extend(page.items)
        token = page.next_token
        if token is None:
            return fills
    raise AssertionError("list_fills paging did not end")


def test_each_key_is_its_own_account(
    paper_exchange: Any, broker: AlpacaBroker, connect: Callable[..., AlpacaBroker]
) -> None:
    paper_exchange.freeze_market(True)
    other_key, other_secret = paper_exchange.accounts[1]
    other = connect(key_id=other_key, secret_key=other_secret)
    request = resting_limit()

    mine = broker.place(request)
    theirs = other.place(request)  # the same client_order_id: another account's namespace

    assert mine.broker_order_id != theirs.broker_order_id
    assert other.get_order_by_client_id(request.client_order_id).broker_order_id == (
        theirs.broker_order_id
    )
    with pytest.raises(OrderNotFound):
        other.get_order(mine.broker_order_id)
    assert [o.broker_order_id for o in other.list_orders().items] == [theirs.broker_order_id]
    assert [o["id"] for o in paper_exchange.truth(account=other_key)] == [theirs.broker_order_id]


def test_an_order_beyond_the_buying_power_is_rejected_and_not_created(
    paper_exchange: Any, broker: AlpacaBroker, recorder: Recorder
) -> None:
    request = market(Side.BUY, "6000")  # 1,140,000 at 190.00 against 1,000,000 of cash

    with pytest.raises(OrderRejected) as refused:
        broker.place(request)

    assert refused.value.status_code == 403
    assert not isinstance(refused.value, DuplicateClientOrderId)
    assert recorder.sleeps == []
    assert truth_with_cid(paper_exchange, request.client_order_id) == []
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id(request.client_order_id)


def test_list_orders_pages_through_orders_sharing_a_submitted_at(
    paper_exchange: Any, broker: AlpacaBroker
) -> None:
    paper_exchange.freeze_market(True)
    placed = []
    for index in range(8):
        paper_exchange.set_faults(p_same_timestamp=1.0 if index % 2 else 0.0)
        placed.append(broker.place(resting_limit()).broker_order_id)
    paper_exchange.wait_for(
        lambda: {o["status"] for o in paper_exchange.truth()} == {"new"}  # all routed
    )

    listed = _all_orders(broker, page_size=3)

    truth = paper_exchange.truth()
    stamps = [o["submitted_at"] for o in truth]
    assert len(set(stamps)) == 4  # four pairs, each pair to the microsecond
    assert [o.broker_order_id for o in listed] == placed
    assert [o.submitted_at for o in listed] == [to_datetime(s, "submitted_at") for s in stamps]


def test_list_orders_misses_nothing_when_overnight_orders_are_routed(
    paper_exchange: Any, broker: AlpacaBroker
) -> None:
    paper_exchange.freeze_market(True)
    paper_exchange.set_session(3600, 3600)
    before_close = [broker.place(resting_limit()).broker_order_id for _ in range(2)]
    paper_exchange.wait_for(  # routed before the close, or they too would wait for the open
        lambda: {o["status"] for o in paper_exchange.truth()} == {"new"}
    )
    paper_exchange.close_day()
    overnight = [broker.place(resting_limit()).broker_order_id for _ in range(3)]
    paper_exchange.wait_for(  # acknowledged, and accepted until the open
        lambda: all(o["parked"] for o in paper_exchange.truth() if o["id"] in overnight)
    )
    # page_size 4 > the 3 orders that will share the opening time (see the report: the
    # adapter cannot page through a full page of one submitted_at).
    first_page = broker.list_orders(status="all", page_size=4)
    assert first_page.next_token is not None

    paper_exchange.set_session(3600, 3600)  # the open: their submitted_at moves to it
    rest: list[OrderReport] = []
    token = first_page.next_token
    while token is not None:
        page = broker.list_orders(status="all", page_size=4, page_token=token)
        rest.extend(page.items)
        token = page.next_token

    seen = [o.broker_order_id for o in (*first_page.items, *rest)]
    assert set(seen) == {*before_close, *overnight}
    assert len(seen) > 5  # an order listed before the open is listed again after it
    truth = {o["id"]: o for o in paper_exchange.truth()}
    assert len({truth[i]["submitted_at"] for i in overnight}) == 1
    for report in rest:
        truth_at = truth[report.broker_order_id]["submitted_at"]
        assert report.submitted_at == to_datetime(truth_at, "submitted_at")


def test_a_forward_fill_cursor_steps_past_a_late_activity(
    paper_exchange: Any, broker: AlpacaBroker
) -> None:
    paper_exchange.freeze_market(True)
    late_order = broker.place(resting_limit())
    on_time_order = broker.place(resting_limit())
    paper_exchange.set_faults(next_late_activity=1, late_activity_ms=[1000, 1000])
    late = paper_exchange.force_fill(late_order.broker_order_id)["fill"]
    paper_exchange.force_fill(on_time_order.broker_order_id)

    seen = _all_fills(broker)
    assert [f.broker_order_id for f in seen] == [on_time_order.broker_order_id]
    cursor = broker.fill_cursor(seen[-1])
    # Polled slowly: each poll is two requests against the key's 200/min.
    paper_exchange.wait_for(lambda: len(_all_fills(broker)) == 2, interval_s=0.2)

    assert _all_fills(broker, cursor) == []  # resuming from the cursor never meets it
    assert {f.broker_fill_id for f in _all_fills(broker)} == {
        late["id"],
        seen[0].broker_fill_id,
    }
    assert broker.get_order(late_order.broker_order_id).status is OrderStatus.FILLED
