"""Time in force, cancels racing fills, duplicate ids, rejects, forgetting, positions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.paper.engine import (
    DEFAULT_ACCOUNT,
    DayClose,
    DuplicateClientOrderIdError,
    Engine,
    OrderClosedError,
    UnknownOrderError,
)
from brokers.paper.model import PaperStatus, from_us
from core.enums import OrderType, Side, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, status_time, statuses

ACK_MAX_MS = 5


def test_ioc_fills_what_is_marketable_and_cancels_the_rest(clock: FakeClock) -> None:
    engine = make_engine(clock, partial_fill_probability=1.0)
    engine.set_price("AAPL", Decimal("100.00"))
    partial = engine.submit(order(type=OrderType.LIMIT, limit="101.00", tif=TimeInForce.IOC))
    away = engine.submit(order(type=OrderType.LIMIT, limit="99.00", tif=TimeInForce.IOC))

    clock.tick(ACK_MAX_MS)
    engine.advance()

    assert statuses(partial) == ["accepted", "new", "partially_filled", "canceled"]
    assert 0 < partial.filled_qty < partial.qty
    assert len(partial.fills) == 1
    assert partial.canceled_us == partial.fills[0].time_us
    assert statuses(away) == ["accepted", "new", "canceled"]
    assert away.fills == []


def test_ioc_without_partials_fills_completely(clock: FakeClock) -> None:
    engine = make_engine(clock, partial_fill_probability=0.0)
    placed = engine.submit(order(tif=TimeInForce.IOC))

    clock.tick(ACK_MAX_MS)
    engine.advance()

    assert statuses(placed) == ["accepted", "new", "filled"]


@pytest.mark.parametrize("limit", ["101.00", "99.00"])
def test_fok_fills_fully_at_once_or_not_at_all(clock: FakeClock, limit: str) -> None:
    engine = make_engine(clock, partial_fill_probability=1.0)
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(type=OrderType.LIMIT, limit=limit, tif=TimeInForce.FOK))

    clock.tick(ACK_MAX_MS)
    engine.advance()

    if Decimal(limit) >= 100:
        assert statuses(placed) == ["accepted", "new", "filled"]
        assert [f.qty for f in placed.fills] == [placed.qty]
    else:
        assert statuses(placed) == ["accepted", "new", "canceled"]
        assert placed.filled_qty == 0


def test_close_day_expires_open_day_orders_only(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal("100.00"))
    day = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    gtc = engine.submit(order(type=OrderType.LIMIT, limit="50.00", tif=TimeInForce.GTC))
    clock.tick(ACK_MAX_MS)

    assert engine.close_day() == DayClose(expired=1, done_for_day=0)

    assert day.status is PaperStatus.EXPIRED
    assert day.expired_us == day.updated_us
    assert gtc.status is PaperStatus.NEW
    engine.set_price("AAPL", Decimal("49.00"))
    assert day.fills == []


def test_cancel_goes_pending_then_canceled_after_the_delay(clock: FakeClock) -> None:
    engine = make_engine(clock, cancel_delay_ms=(50, 50))
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    clock.tick(ACK_MAX_MS)

    engine.cancel(placed.id)
    assert placed.status is PaperStatus.PENDING_CANCEL
    clock.tick(49)
    engine.advance()
    assert placed.status is PaperStatus.PENDING_CANCEL
    clock.tick(1)
    engine.advance()

    assert statuses(placed) == ["accepted", "new", "pending_cancel", "canceled"]
    assert placed.canceled_us == status_time(placed, PaperStatus.CANCELED)
    engine.set_price("AAPL", Decimal("40.00"))
    assert placed.fills == []
    with pytest.raises(OrderClosedError):
        engine.cancel(placed.id)
    with pytest.raises(UnknownOrderError):
        engine.cancel("no-such-order")


def test_a_fill_due_before_the_cancel_takes_effect_wins(clock: FakeClock) -> None:
    engine = make_engine(
        clock, fill_delay_ms=(30, 30), cancel_delay_ms=(50, 50), partial_fill_probability=0.0
    )
    placed = engine.submit(order())
    clock.tick(ACK_MAX_MS)
    engine.advance()

    engine.cancel(placed.id)
    clock.tick(100)
    engine.advance()

    assert statuses(placed) == ["accepted", "new", "pending_cancel", "filled"]
    assert placed.canceled_us is None


def test_a_cancel_that_takes_effect_first_stops_later_fills(clock: FakeClock) -> None:
    engine = make_engine(
        clock, fill_delay_ms=(200, 200), cancel_delay_ms=(0, 0), partial_fill_probability=1.0
    )
    placed = engine.submit(order(qty="1000"))
    clock.tick(ACK_MAX_MS)
    engine.advance()
    acked = status_time(placed, PaperStatus.NEW)
    clock.now = from_us(acked + 200_000 - 1)  # just before the last fill is due
    engine.advance()
    filled_before_cancel = placed.filled_qty

    engine.cancel(placed.id)
    clock.tick(500)
    engine.advance()

    assert placed.status is PaperStatus.CANCELED
    assert placed.filled_qty == filled_before_cancel < placed.qty
    assert sum(f.qty for f in placed.fills) == placed.filled_qty
    assert all(f.time_us < placed.canceled_us for f in placed.fills)  # type: ignore[operator]


def test_cancel_before_the_ack_still_cancels(clock: FakeClock) -> None:
    engine = make_engine(clock, fill_delay_ms=(100, 100), cancel_delay_ms=(10, 10))
    placed = engine.submit(order())

    engine.cancel(placed.id)
    clock.tick(200)
    engine.advance()

    assert statuses(placed) == ["accepted", "pending_cancel", "canceled"]
    assert placed.fills == []


def test_cancel_all_cancels_every_open_order(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal("100.00"))
    resting = [engine.submit(order(type=OrderType.LIMIT, limit="50.00")) for _ in range(3)]
    clock.tick(1000)
    done = engine.submit(order())
    clock.tick(1000)
    engine.advance()
    assert done.status is PaperStatus.FILLED

    canceled = engine.cancel_all().canceled
    clock.tick(100)
    engine.advance()

    assert {o.id for o in canceled} == {o.id for o in resting}
    assert {o.status for o in resting} == {PaperStatus.CANCELED}


def test_client_order_ids_are_unique_across_every_status(clock: FakeClock) -> None:
    engine = make_engine(clock)
    first = engine.submit(order(cid="abc"))
    clock.tick(1000)
    engine.advance()
    assert first.status is PaperStatus.FILLED

    with pytest.raises(DuplicateClientOrderIdError):
        engine.submit(order(cid="abc"))
    assert engine.get_by_client_id("abc") is first
    assert len(engine.orders) == 1


def test_generated_client_order_ids_are_distinct(clock: FakeClock) -> None:
    engine = make_engine(clock)
    ids = {engine.submit(order()).client_order_id for _ in range(100)}
    assert len(ids) == 100


def test_a_rejected_order_never_trades(clock: FakeClock) -> None:
    engine = make_engine(clock)
    placed = engine.submit(order(), reject=True)
    assert placed.status is PaperStatus.ACCEPTED

    clock.tick(1000)
    engine.advance()

    assert statuses(placed) == ["accepted", "rejected"]
    assert placed.failed_us is not None
    assert placed.fills == []


def test_a_forgotten_order_is_unknown_but_kept_in_truth(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00", cid="lost"))
    clock.tick(ACK_MAX_MS)

    engine.forget(placed.id)
    engine.set_price("AAPL", Decimal("40.00"))

    assert engine.get(placed.id) is None
    assert engine.get_by_client_id("lost") is None
    assert engine.truth_by_id[placed.id] is placed
    assert placed.forgotten
    assert placed.fills == []
    with pytest.raises(UnknownOrderError):
        engine.cancel(placed.id)


def test_force_fill_fills_exactly_what_is_asked(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00", qty="10"))
    clock.tick(ACK_MAX_MS)

    first = engine.force_fill(placed.id, Decimal(4), Decimal("49.50"))
    clock.tick(1)
    second = engine.force_fill(placed.id)

    assert (first.qty, first.price, first.leaves_qty) == (Decimal(4), Decimal("49.50"), 6)
    assert (second.qty, second.price) == (Decimal(6), Decimal("100.00"))
    assert statuses(placed) == ["accepted", "new", "partially_filled", "filled"]
    assert placed.avg_price == Decimal("79.8")
    with pytest.raises(OrderClosedError):
        engine.force_fill(placed.id)


@pytest.mark.parametrize("qty", [Decimal(0), Decimal(11)])
def test_force_fill_refuses_impossible_quantities(clock: FakeClock, qty: Decimal) -> None:
    engine = make_engine(clock)
    placed = engine.submit(order(type=OrderType.LIMIT, limit="1.00", qty="10"))
    with pytest.raises(ValueError, match="qty"):
        engine.force_fill(placed.id, qty)


def _trade(engine: Engine, side: Side, qty: str, price: str) -> None:
    """A resting order that never crosses by itself, filled by force at ``price``."""
    far = "1.00" if side is Side.BUY else "9999.00"
    placed = engine.submit(order(side=side, type=OrderType.LIMIT, limit=far, qty=qty))
    engine.force_fill(placed.id, price=Decimal(price))


def test_positions_average_in_and_flip_through_zero(clock: FakeClock) -> None:
    engine = make_engine(clock)
    ledger = engine.account(DEFAULT_ACCOUNT).ledger
    cash = ledger.cash

    _trade(engine, Side.BUY, "10", "100.00")
    _trade(engine, Side.BUY, "10", "110.00")
    _trade(engine, Side.SELL, "5", "120.00")
    position = ledger.positions["AAPL"]
    assert (position.qty, position.avg_price) == (Decimal(15), Decimal(105))

    _trade(engine, Side.SELL, "20", "90.00")
    position = ledger.positions["AAPL"]
    assert (position.qty, position.avg_price) == (Decimal(-5), Decimal(90))
    assert ledger.cash == cash - 1000 - 1100 + 600 + 1800

    _trade(engine, Side.BUY, "5", "80.00")
    assert "AAPL" not in ledger.positions


def test_orders_in_one_microsecond_share_their_timestamps(clock: FakeClock) -> None:
    engine = make_engine(clock, ack_delay_ms=(1, 1))
    placed = [engine.submit(order(type=OrderType.LIMIT, limit="1.00")) for _ in range(5)]
    assert (
        {o.created_us for o in placed} == {o.submitted_us for o in placed} == {placed[0].created_us}
    )

    clock.tick(1)
    engine.advance()

    assert {o.submitted_us for o in placed} == {placed[0].created_us + 1000}
    assert all(o.created_us < o.submitted_us for o in placed)


def test_reset_forgets_everything_but_keeps_ids_unique(clock: FakeClock) -> None:
    engine = make_engine(clock)
    placed = engine.submit(order(cid="x"))
    clock.tick(1000)
    engine.advance()
    first_fill = placed.fills[0].id

    engine.reset(engine.config)
    again = engine.submit(order(cid="x"))
    clock.tick(1000)
    engine.advance()

    assert engine.orders == [again]
    assert engine.get(placed.id) is None
    assert again.fills[0].id != first_fill
    assert engine.account(DEFAULT_ACCOUNT).ledger.positions["AAPL"].qty == 10


def test_nothing_happens_to_an_order_before_it_was_submitted(clock: FakeClock) -> None:
    engine = make_engine(clock)
    placed = [engine.submit(order(type=OrderType.LIMIT, limit="1.00")) for _ in range(3)]

    fill = engine.force_fill(placed[-1].id)
    engine.cancel(placed[-1].id if placed[-1].is_open else placed[0].id)

    assert fill.time_us >= placed[-1].submitted_us
    assert placed[0].timeline[-1][1] >= placed[-1].submitted_us


def test_an_acknowledged_submission_works_at_once_without_waiting_for_the_ack(
    clock: FakeClock,
) -> None:
    engine = make_engine(clock, fill_delay_ms=(0, 0), partial_fill_probability=0.0)
    engine.set_price("AAPL", Decimal("100.00"))
    resting = engine.submit(order(type=OrderType.LIMIT, limit="50.00"), acknowledged=True)
    marketable = engine.submit(order(type=OrderType.LIMIT, limit="101.00"), acknowledged=True)

    engine.advance()  # no time passes: nothing waits for an ack

    assert statuses(resting) == ["accepted", "new"]
    assert resting.resting == "limit"
    assert resting.updated_us == resting.submitted_us == resting.created_us
    assert statuses(marketable) == ["accepted", "new", "filled"]
    clock.tick(1000)
    engine.advance()
    assert statuses(resting) == ["accepted", "new"]  # a single ack: never rested twice
    assert engine.books["AAPL"].live == 1
