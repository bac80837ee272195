"""Replacing an order in the engine: the new order, the race with fills and the close,
buying power while both exist, and the statuses that refuse a replace or a cancel."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.alpaca.paper.queries import list_orders
from brokers.alpaca.paper.replace import InvalidChangeError, NotReplaceableError
from brokers.paper.engine import (
    DEFAULT_ACCOUNT,
    DayClose,
    DuplicateClientOrderIdError,
    Engine,
    InsufficientBuyingPowerError,
    UnknownOrderError,
)
from brokers.paper.model import NotCancelableError, Order, OrderChanges, PaperStatus, from_us
from core.enums import OrderType, Side, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, status_time, statuses

ACK_MS = 5  # the ack delay, so the replace delay too
CANCEL_MS = 50
HOUR_S = 3600.0


def _engine(clock: FakeClock, **config: object) -> Engine:
    """Fixed delays, no partial fills; AAPL at 100.00 so a buy limit at 50.00 rests."""
    settings: dict[str, object] = {
        "ack_delay_ms": (ACK_MS, ACK_MS),
        "fill_delay_ms": (0, 0),
        "cancel_delay_ms": (0, 0),
        "partial_fill_probability": 0.0,
        **config,
    }
    engine = make_engine(clock, **settings)
    engine.set_price("AAPL", Decimal("100.00"))
    return engine


def _resting(engine: Engine, clock: FakeClock, **fields: object) -> Order:
    """An acknowledged buy limit at 50.00 (GTC unless told), resting in the book."""
    values = {"type": OrderType.LIMIT, "limit": "50.00", "tif": TimeInForce.GTC, **fields}
    placed = engine.submit(order(**values))  # type: ignore[arg-type]
    clock.tick(ACK_MS)
    engine.advance()
    assert placed.status is PaperStatus.NEW
    return placed


def _replace(engine: Engine, placed: Order, **changes: object) -> Order:
    return engine.replace(placed.id, DEFAULT_ACCOUNT, OrderChanges(**changes))  # type: ignore[arg-type]


def _buying_power(engine: Engine) -> Decimal:
    return engine.account(DEFAULT_ACCOUNT).buying_power(engine.price_of)


def test_every_field_changes_and_the_new_order_takes_the_old_ones_place(
    clock: FakeClock,
) -> None:
    engine = _engine(clock)
    old = engine.submit(
        order(type=OrderType.STOP_LIMIT, stop="150.00", limit="151.00", tif=TimeInForce.GTC)
    )
    clock.tick(ACK_MS)
    engine.advance()
    assert old.resting == "stop"

    new = _replace(
        engine,
        old,
        qty=Decimal(20),
        time_in_force=TimeInForce.DAY,
        limit_price=Decimal("141.00"),
        stop_price=Decimal("140.00"),
        client_order_id="new-1",
    )
    asked_us = engine.now_us

    assert (new.symbol, new.side, new.type) == ("AAPL", Side.BUY, OrderType.STOP_LIMIT)
    assert (new.qty, new.time_in_force, new.limit_price, new.stop_price) == (
        Decimal(20),
        TimeInForce.DAY,
        Decimal("141.00"),
        Decimal("140.00"),
    )
    assert (new.client_order_id, new.replaces, new.replaced_by) == ("new-1", old.id, None)
    assert new.id != old.id
    assert new.status is PaperStatus.ACCEPTED
    assert new.created_us == new.submitted_us == asked_us
    assert old.status is PaperStatus.PENDING_REPLACE
    assert (old.replaced_by, old.replaced_us) == (None, None)
    assert engine.get_by_client_id("new-1") is new
    assert engine.get(new.id) is new
    assert engine.truth_by_id[new.id] is new
    # Both exist until the replace lands: the larger of the two holds buying power.
    assert _buying_power(engine) == Decimal(1_000_000) - 20 * Decimal("141.00")

    clock.tick(ACK_MS - 1, us=999)
    engine.advance()
    assert old.status is PaperStatus.PENDING_REPLACE
    clock.tick(us=1)
    engine.advance()

    replaced_us = asked_us + ACK_MS * 1000
    assert statuses(old) == ["accepted", "new", "pending_replace", "replaced"]
    assert old.replaced_by == new.id
    assert old.replaced_us == old.updated_us == replaced_us
    assert old.resting is None
    assert statuses(new) == ["accepted", "new"]
    assert new.submitted_us == status_time(new, PaperStatus.NEW) == replaced_us
    assert new.resting == "stop"
    assert engine.books["AAPL"].live == 1
    assert engine.account(DEFAULT_ACCOUNT).open == {new.id: new}
    assert _buying_power(engine) == Decimal(1_000_000) - 20 * Decimal("141.00")

    engine.set_price("AAPL", Decimal("140.50"))  # triggers the new stop, not the old one
    assert statuses(new) == ["accepted", "new", "filled"]
    assert new.fills[0].price <= Decimal("141.00")
    assert old.fills == []


def test_fields_not_given_are_the_old_orders(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock, cid="keep", qty="7")

    new = _replace(engine, old, limit_price=Decimal("55.00"))

    assert (new.qty, new.time_in_force, new.type, new.side) == (
        Decimal(7),
        TimeInForce.GTC,
        OrderType.LIMIT,
        Side.BUY,
    )
    assert (new.limit_price, new.stop_price) == (Decimal("55.00"), None)
    assert new.client_order_id not in ("keep", "")
    assert engine.get_by_client_id(new.client_order_id) is new
    assert engine.get_by_client_id("keep") is old


def test_a_partial_fill_while_pending_replace_stays_with_the_old_order(
    clock: FakeClock,
) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock, qty="10")
    new = _replace(engine, old, limit_price=Decimal("60.00"))

    fill = engine.force_fill(old.id, Decimal(4), Decimal("50.00"))

    assert old.status is PaperStatus.PENDING_REPLACE  # as pending_cancel does
    assert fill.order_status is PaperStatus.PENDING_REPLACE
    assert (old.filled_qty, old.leaves_qty) == (Decimal(4), Decimal(6))
    clock.tick(ACK_MS)
    engine.advance()

    assert statuses(old) == ["accepted", "new", "pending_replace", "replaced"]
    assert old.filled_qty == 4
    assert old.fills == [fill]
    assert old.replaced_by == new.id
    assert statuses(new) == ["accepted", "new"]
    assert (new.qty, new.filled_qty, new.fills) == (Decimal(10), Decimal(0), [])
    owner = engine.account(DEFAULT_ACCOUNT)
    assert owner.ledger.positions["AAPL"].qty == 4
    assert _buying_power(engine) == owner.ledger.cash - 10 * Decimal("60.00")


def test_fills_scheduled_for_the_old_order_are_void_once_replaced(clock: FakeClock) -> None:
    engine = _engine(clock, fill_delay_ms=(50, 50))
    old = engine.submit(order(type=OrderType.LIMIT, limit="101.00", tif=TimeInForce.GTC))
    clock.tick(ACK_MS)
    engine.advance()  # marketable: its fill is due 50 ms after the ack
    assert old.status is PaperStatus.NEW

    new = _replace(engine, old, qty=Decimal(3))
    clock.tick(1000)
    engine.advance()

    assert statuses(old) == ["accepted", "new", "pending_replace", "replaced"]
    assert old.fills == []
    assert statuses(new) == ["accepted", "new", "filled"]
    assert new.filled_qty == 3


def test_a_fill_that_beats_the_replace_rejects_the_new_order(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock)
    new = _replace(engine, old, limit_price=Decimal("40.00"))

    engine.set_price("AAPL", Decimal("45.00"))  # crosses the old limit, not the new one

    assert old.status is PaperStatus.FILLED
    assert new.status is PaperStatus.ACCEPTED
    owner = engine.account(DEFAULT_ACCOUNT)
    assert _buying_power(engine) == owner.ledger.cash - 10 * Decimal("40.00")
    clock.tick(ACK_MS)
    engine.advance()

    assert statuses(old) == ["accepted", "new", "pending_replace", "filled"]
    assert (old.replaced_by, old.replaced_us) == (None, None)
    assert statuses(new) == ["accepted", "rejected"]
    assert new.failed_us == new.updated_us == old.filled_us + ACK_MS * 1000  # type: ignore[operator]
    assert new.fills == []
    assert owner.open == {}
    assert _buying_power(engine) == owner.ledger.cash


def _not_replaceable(status: PaperStatus, engine: Engine, clock: FakeClock) -> Order:
    """An order of ``status``, made the way a client would get there."""
    if status is PaperStatus.ACCEPTED:
        return engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    if status is PaperStatus.REJECTED:
        placed = engine.submit(order(), reject=True)
        clock.tick(ACK_MS)
        engine.advance()
        return placed
    if status is PaperStatus.FILLED:
        placed = engine.submit(order())
        clock.tick(ACK_MS)
        engine.advance()
        return placed
    placed = _resting(engine, clock, tif=TimeInForce.DAY)
    if status is PaperStatus.EXPIRED:
        engine.close_day()
    elif status is PaperStatus.PENDING_REPLACE:
        _replace(engine, placed, qty=Decimal(1))
    elif status is PaperStatus.REPLACED:
        _replace(engine, placed, qty=Decimal(1))
        clock.tick(ACK_MS)
        engine.advance()
    else:
        engine.cancel(placed.id)  # the engine's cancel delay is CANCEL_MS
        if status is PaperStatus.CANCELED:
            clock.tick(CANCEL_MS)
            engine.advance()
    return placed


@pytest.mark.parametrize(
    "status",
    [
        PaperStatus.ACCEPTED,
        PaperStatus.PENDING_CANCEL,
        PaperStatus.PENDING_REPLACE,
        PaperStatus.FILLED,
        PaperStatus.CANCELED,
        PaperStatus.EXPIRED,
        PaperStatus.REJECTED,
        PaperStatus.REPLACED,
    ],
)
def test_orders_in_these_statuses_are_not_replaceable(
    clock: FakeClock, status: PaperStatus
) -> None:
    engine = _engine(
        clock, session_s=HOUR_S, overnight_s=HOUR_S, cancel_delay_ms=(CANCEL_MS, CANCEL_MS)
    )
    placed = _not_replaceable(status, engine, clock)
    assert placed.status is status
    known = list(engine.orders)

    with pytest.raises(NotReplaceableError) as refused:
        _replace(engine, placed, qty=Decimal(2))

    assert (refused.value.order_id, refused.value.status) == (placed.id, status)
    assert engine.orders == known
    assert placed.status is status


def test_a_replacement_not_at_the_venue_yet_is_not_replaceable(clock: FakeClock) -> None:
    engine = _engine(clock)
    new = _replace(engine, _resting(engine, clock), qty=Decimal(2))

    with pytest.raises(NotReplaceableError):
        _replace(engine, new, qty=Decimal(3))
    with pytest.raises(ValueError, match="replacement"):
        engine.force_fill(new.id)


def test_a_replacement_can_be_replaced_once_it_took_over(clock: FakeClock) -> None:
    engine = _engine(clock)
    first = _resting(engine, clock)
    second = _replace(engine, first, qty=Decimal(2))
    clock.tick(ACK_MS)
    engine.advance()

    third = _replace(engine, second, qty=Decimal(3))
    clock.tick(ACK_MS)
    engine.advance()

    assert (first.replaced_by, second.replaces) == (second.id, first.id)
    assert (second.replaced_by, third.replaces) == (third.id, second.id)
    assert [o.status for o in (first, second, third)] == [
        PaperStatus.REPLACED,
        PaperStatus.REPLACED,
        PaperStatus.NEW,
    ]
    assert engine.books["AAPL"].live == 1


def test_unknown_and_other_accounts_orders_are_unknown(clock: FakeClock) -> None:
    engine = _engine(clock, accounts=(DEFAULT_ACCOUNT, "other"))
    theirs = engine.submit(order(type=OrderType.LIMIT, limit="50.00"), account="other")
    clock.tick(ACK_MS)

    with pytest.raises(UnknownOrderError):
        engine.replace("no-such-order", DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(1)))
    with pytest.raises(UnknownOrderError):
        engine.replace(theirs.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(1)))
    assert theirs.status is PaperStatus.NEW


@pytest.mark.parametrize(
    ("fields", "changes", "reason"),
    [
        ({"type": OrderType.MARKET}, {"limit_price": Decimal(1)}, "limit_price applies only"),
        ({"type": OrderType.STOP, "stop": "150.00"}, {"limit_price": Decimal(1)}, "limit_price"),
        ({}, {"stop_price": Decimal(1)}, "stop_price applies only"),
        ({"qty": "0.5"}, {"qty": Decimal(1)}, "fractional"),
    ],
)
def test_changes_the_order_cannot_take_are_refused(
    clock: FakeClock, fields: dict[str, object], changes: dict[str, object], reason: str
) -> None:
    engine = _engine(clock, fill_delay_ms=(1000, 1000))  # a market order stays open
    values: dict[str, object] = {"type": OrderType.LIMIT, "limit": "50.00", **fields}
    if values["type"] is not OrderType.LIMIT:
        values.pop("limit")
    placed = engine.submit(order(**values))  # type: ignore[arg-type]
    clock.tick(ACK_MS)
    engine.advance()
    assert placed.status is PaperStatus.NEW

    with pytest.raises(InvalidChangeError, match=reason):
        _replace(engine, placed, **changes)
    assert placed.status is PaperStatus.NEW
    assert len(engine.orders) == 1


def test_a_fractional_orders_price_may_change(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock, qty="0.5")
    new = _replace(engine, old, limit_price=Decimal("51.00"))
    assert new.qty == Decimal("0.5")


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({}, "nothing to replace"),
        ({"qty": Decimal(0)}, "qty"),
        ({"qty": Decimal(-1)}, "qty"),
        ({"qty": Decimal("2.5")}, "whole"),
        ({"qty": Decimal("NaN")}, "qty"),
        ({"limit_price": Decimal(0)}, "limit_price"),
        ({"stop_price": Decimal("-1")}, "stop_price"),
        ({"stop_price": Decimal("1e999999")}, "stop_price must be below"),
    ],
)
def test_changes_no_order_could_take_cannot_be_made(
    changes: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        OrderChanges(**changes)  # type: ignore[arg-type]


def test_client_order_ids_stay_unique(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock, cid="mine")
    _resting(engine, clock, cid="taken")

    for cid in ("mine", "taken"):
        with pytest.raises(DuplicateClientOrderIdError):
            _replace(engine, old, client_order_id=cid)
    assert old.status is PaperStatus.NEW
    assert len(engine.orders) == 2


def test_buying_power_holds_the_larger_of_the_two_while_replacing(clock: FakeClock) -> None:
    engine = _engine(clock, starting_cash=Decimal(1000))
    old = _resting(engine, clock, qty="10")  # 10 x 50.00 = 500 held
    assert _buying_power(engine) == 500

    with pytest.raises(InsufficientBuyingPowerError):
        _replace(engine, old, qty=Decimal(21))  # 1050: 550 more than held, only 500 free
    assert old.status is PaperStatus.NEW
    assert len(engine.orders) == 1

    bigger = _replace(engine, old, qty=Decimal(20))  # 1000: exactly 500 more
    assert _buying_power(engine) == 0
    clock.tick(ACK_MS)
    engine.advance()
    assert _buying_power(engine) == 0

    smaller = _replace(engine, bigger, qty=Decimal(4))  # less than held: always allowed
    assert _buying_power(engine) == 0  # the old 1000 holds until the replace lands
    engine.force_fill(bigger.id, Decimal(18), Decimal("50.00"))  # 100 left: the new 200 holds
    assert _buying_power(engine) == Decimal(1000) - 18 * 50 - 200
    clock.tick(ACK_MS)
    engine.advance()

    assert smaller.status is PaperStatus.NEW
    assert _buying_power(engine) == Decimal(1000) - 18 * 50 - 200


def test_a_pending_replace_order_cannot_be_canceled(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock)
    new = _replace(engine, old, limit_price=Decimal("45.00"))

    with pytest.raises(NotCancelableError) as refused:
        engine.cancel(old.id)
    assert (refused.value.order_id, refused.value.status) == (old.id, old.status)
    result = engine.cancel_all()

    assert result.canceled == [new]
    assert result.refused == [old]
    assert old.status is PaperStatus.PENDING_REPLACE
    assert new.status is PaperStatus.PENDING_CANCEL
    clock.tick(ACK_MS)
    engine.advance()
    # The cancel of the replacement cannot overtake it: it lands after the replace.
    assert statuses(old) == ["accepted", "new", "pending_replace", "replaced"]
    assert statuses(new) == ["accepted", "pending_cancel", "canceled"]
    assert new.canceled_us == old.replaced_us
    assert engine.account(DEFAULT_ACCOUNT).open == {}
    assert engine.books["AAPL"].live == 0


def test_the_close_expiring_a_pending_replace_day_order_rejects_the_new_one(
    clock: FakeClock,
) -> None:
    engine = _engine(clock, session_s=HOUR_S, overnight_s=HOUR_S)
    old = _resting(engine, clock, tif=TimeInForce.DAY)
    new = _replace(engine, old, limit_price=Decimal("55.00"))

    assert engine.close_day() == DayClose(expired=1, done_for_day=0)
    assert old.status is PaperStatus.EXPIRED
    assert new.status is PaperStatus.ACCEPTED  # not at the venue yet
    clock.tick(ACK_MS)
    engine.advance()

    assert statuses(old) == ["accepted", "new", "pending_replace", "expired"]
    assert old.replaced_by is None
    assert statuses(new) == ["accepted", "rejected"]
    assert engine.account(DEFAULT_ACCOUNT).open == {}


def test_a_done_for_day_order_replaced_overnight_works_at_the_open(clock: FakeClock) -> None:
    engine = _engine(clock, session_s=HOUR_S, overnight_s=HOUR_S)
    old = _resting(engine, clock, qty="10")
    engine.force_fill(old.id, Decimal(4), Decimal("50.00"))
    assert engine.close_day() == DayClose(expired=0, done_for_day=1)

    new = _replace(engine, old, limit_price=Decimal("101.00"))  # marketable at the open
    assert old.status is PaperStatus.PENDING_REPLACE
    clock.tick(ACK_MS)
    engine.advance()
    assert old.status is PaperStatus.REPLACED
    assert statuses(new) == ["accepted"]  # parked: accepted until the market opens
    assert new.fills == []

    clock.now = from_us(engine.session.next_change_us or 0)
    engine.advance()

    assert engine.session.is_open
    assert statuses(new) == ["accepted", "new", "filled"]
    assert old.filled_qty == 4  # the old order never traded again


def test_listings_count_pending_replace_open_and_replaced_closed(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock)
    new = _replace(engine, old, qty=Decimal(2))

    def listed(status: str) -> set[str]:
        return {o.id for o in list_orders(engine, status=status)}  # type: ignore[arg-type]

    assert listed("open") == {old.id, new.id}
    assert listed("closed") == set()
    clock.tick(ACK_MS)

    assert listed("open") == {new.id}
    assert listed("closed") == {old.id}
    assert listed("all") == {old.id, new.id}


def test_a_forgotten_old_order_rejects_its_replacement(clock: FakeClock) -> None:
    engine = _engine(clock)
    old = _resting(engine, clock)
    new = _replace(engine, old, qty=Decimal(2))

    engine.forget(old.id)
    clock.tick(ACK_MS)
    engine.advance()

    assert statuses(new) == ["accepted", "rejected"]
    assert old.replaced_by is None
    assert _buying_power(engine) == Decimal(1_000_000)


def _scenario(clock: FakeClock) -> list[tuple[str, str, list[tuple[PaperStatus, int]]]]:
    engine = _engine(clock, ack_delay_ms=(1, 5), fill_delay_ms=(0, 300))
    placed = [_resting(engine, clock) for _ in range(3)]
    for position, each in enumerate(placed):
        _replace(engine, each, qty=Decimal(position + 1), limit_price=Decimal("101.00"))
    clock.tick(1000)
    engine.advance()
    return [(o.id, o.client_order_id, o.timeline) for o in engine.orders]


def test_replacing_is_deterministic(clock: FakeClock) -> None:
    first = _scenario(clock)
    again = _scenario(FakeClock())
    assert first == again
    assert len(first) == 6
