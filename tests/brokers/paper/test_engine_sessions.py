"""Trading sessions on the fake clock: the close, done_for_day, overnight orders routed at the
open, shared timestamps, and cancels racing expiry and rejection."""

from __future__ import annotations

from decimal import Decimal

from brokers.alpaca.paper.queries import list_orders
from brokers.alpaca.paper.wire import clock_json
from brokers.paper.engine import DayClose, Engine
from brokers.paper.model import PaperStatus, to_us
from brokers.paper.session import NEVER_US
from core.enums import OrderType, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, statuses

ACK_MAX_MS = 5
SESSION_S = 60.0
OVERNIGHT_S = 30.0


def _sessions(clock: FakeClock, **config: object) -> Engine:
    """A one-minute session then 30 s closed, from the clock's start."""
    config.setdefault("partial_fill_probability", 0.0)
    engine = make_engine(clock, session_s=SESSION_S, overnight_s=OVERNIGHT_S, **config)
    engine.set_price("AAPL", Decimal("100.00"))
    return engine


def _to_close(clock: FakeClock, engine: Engine, after_ms: float = 0) -> None:
    """Move the clock to the scheduled close (plus ``after_ms``) and let the engine see it."""
    assert engine.session.is_open
    assert engine.session.next_change_us is not None
    clock.tick(us=engine.session.next_change_us - to_us(clock()))
    clock.tick(after_ms)
    engine.advance()


def test_the_close_expires_day_orders_at_the_scheduled_time(clock: FakeClock) -> None:
    engine = _sessions(clock)
    day = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    gtc = engine.submit(order(type=OrderType.LIMIT, limit="50.00", tif=TimeInForce.GTC))
    close_us = to_us(clock()) + int(SESSION_S * 1_000_000)

    _to_close(clock, engine, after_ms=-1)
    assert day.status is PaperStatus.NEW
    clock.tick(1)
    engine.advance()

    assert statuses(day) == ["accepted", "new", "expired"]
    assert day.expired_us == close_us == day.updated_us
    assert gtc.status is PaperStatus.NEW
    assert not engine.session.is_open
    assert engine.session.next_change_us == close_us + int(OVERNIGHT_S * 1_000_000)


def test_nothing_fills_overnight_and_resting_orders_cross_at_the_open(clock: FakeClock) -> None:
    engine = _sessions(clock, fill_delay_ms=(0, 0))
    gtc = engine.submit(order(type=OrderType.LIMIT, limit="90.00", tif=TimeInForce.GTC))
    clock.tick(ACK_MAX_MS)
    _to_close(clock, engine)

    engine.set_price("AAPL", Decimal("80.00"))  # through the limit, but the market is shut
    assert gtc.fills == []
    clock.tick(OVERNIGHT_S * 1000)
    engine.advance()

    assert engine.session.is_open
    assert gtc.status is PaperStatus.FILLED
    assert gtc.fills[0].time_us == engine.session.since_us


def test_a_partly_filled_gtc_order_is_done_for_the_day_then_resumes(clock: FakeClock) -> None:
    engine = _sessions(clock, fill_delay_ms=(0, 0))
    placed = engine.submit(
        order(type=OrderType.LIMIT, limit="50.00", qty="10", tif=TimeInForce.GTC)
    )
    clock.tick(ACK_MAX_MS)
    engine.force_fill(placed.id, Decimal(4), Decimal("50.00"))
    _to_close(clock, engine)

    assert placed.status is PaperStatus.DONE_FOR_DAY
    assert placed.resting is None
    engine.set_price("AAPL", Decimal("40.00"))
    clock.tick(OVERNIGHT_S * 1000 - 1)
    engine.advance()
    assert placed.status is PaperStatus.DONE_FOR_DAY
    assert placed.filled_qty == 4

    clock.tick(1)
    engine.advance()

    assert statuses(placed) == [
        "accepted",
        "new",
        "partially_filled",
        "done_for_day",
        "partially_filled",
        "filled",
    ]
    assert placed.fills[-1].time_us == engine.session.since_us


def test_fills_scheduled_before_the_close_wait_for_the_open(clock: FakeClock) -> None:
    engine = _sessions(clock, fill_delay_ms=(200, 200), partial_fill_probability=1.0)
    _to_close(clock, engine, after_ms=-100)
    placed = engine.submit(order(qty="1000", tif=TimeInForce.GTC))
    clock.tick(99)
    engine.advance()
    before_close = list(placed.fills)
    assert placed.status is PaperStatus.PARTIALLY_FILLED or not before_close
    clock.tick(1)
    engine.advance()
    close_us = engine.session.since_us
    assert placed.status in (PaperStatus.DONE_FOR_DAY, PaperStatus.NEW)

    clock.tick(OVERNIGHT_S * 1000 - 1)
    engine.advance()
    assert placed.fills == before_close  # the rest was due overnight: it waits
    clock.tick(1 + 200)
    engine.advance()

    opened = engine.session.since_us
    assert opened == close_us + int(OVERNIGHT_S * 1_000_000)
    assert placed.status is PaperStatus.FILLED
    assert [f for f in placed.fills if f.time_us < opened] == before_close
    assert all(opened <= f.time_us <= opened + 200_000 for f in placed.fills[len(before_close) :])


def test_a_market_order_due_to_fill_after_the_close_fills_after_the_open(
    clock: FakeClock,
) -> None:
    engine = _sessions(clock, fill_delay_ms=(200, 200), ack_delay_ms=(1, 1))
    _to_close(clock, engine, after_ms=-100)
    placed = engine.submit(order(tif=TimeInForce.GTC))  # its fill is due 101 ms after the close
    clock.tick(100)
    engine.advance()
    assert not engine.session.is_open
    clock.tick(OVERNIGHT_S * 1000)  # to the open
    engine.advance()
    assert engine.session.is_open
    assert placed.fills == []
    assert placed.status is PaperStatus.NEW

    clock.tick(200)
    engine.advance()

    [fill] = placed.fills
    assert fill.time_us == engine.session.since_us + 200_000


def test_orders_accepted_overnight_are_routed_at_the_open_with_one_timestamp(
    clock: FakeClock,
) -> None:
    engine = _sessions(clock, fill_delay_ms=(0, 0))
    _to_close(clock, engine)
    placed = []
    for limit in ("50.00", "150.00", "60.00"):
        placed.append(engine.submit(order(type=OrderType.LIMIT, limit=limit)))
        clock.tick(1000)
    engine.advance()

    assert {o.status for o in placed} == {PaperStatus.ACCEPTED}  # acknowledged, not routed
    assert all(o.parked for o in placed)
    assert all(o.submitted_us == o.created_us for o in placed)
    assert [o.fills for o in placed] == [[], [], []]

    clock.tick(OVERNIGHT_S * 1000)
    engine.advance()

    opened = engine.session.since_us
    assert [o.submitted_us for o in placed] == [opened] * 3
    assert all(o.created_us < o.submitted_us for o in placed)
    assert placed[1].status is PaperStatus.FILLED  # marketable at the open
    listed = list_orders(engine, status="all", direction="asc")
    assert [o.id for o in listed] == [o.id for o in placed]  # ties: arrival order
    until_open = list_orders(engine, status="all", until_us=opened)
    after_open = list_orders(engine, status="all", after_us=opened - 1, until_us=opened + 1)
    assert until_open == []
    assert len(after_open) == 3


def test_a_day_order_accepted_overnight_lives_through_the_next_session(clock: FakeClock) -> None:
    engine = _sessions(clock)
    _to_close(clock, engine)
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    clock.tick(OVERNIGHT_S * 1000)
    engine.advance()
    assert placed.status is PaperStatus.NEW

    _to_close(clock, engine)

    assert placed.status is PaperStatus.EXPIRED


def test_close_day_closes_now_and_the_next_session_follows(clock: FakeClock) -> None:
    engine = _sessions(clock)
    day = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    clock.tick(1000)

    closed = engine.close_day()

    assert closed == DayClose(expired=1, done_for_day=0)
    assert day.status is PaperStatus.EXPIRED
    assert not engine.session.is_open
    assert engine.close_day() == DayClose(0, 0)  # already closed
    clock.tick(OVERNIGHT_S * 1000)
    engine.advance()
    assert engine.session.is_open
    assert engine.session.next_change_us == to_us(clock()) + int(SESSION_S * 1_000_000)


def test_without_an_overnight_gap_the_market_reopens_at_once(clock: FakeClock) -> None:
    engine = make_engine(clock, session_s=0, overnight_s=0)
    gtc = engine.submit(order(type=OrderType.LIMIT, limit="1.00", qty="4", tif=TimeInForce.GTC))
    clock.tick(ACK_MAX_MS)
    engine.force_fill(gtc.id, Decimal(1))

    assert engine.close_day() == DayClose(expired=0, done_for_day=1)

    assert engine.session.is_open
    assert engine.session.next_change_us is None  # 24/7 again
    assert statuses(gtc)[-2:] == ["done_for_day", "partially_filled"]
    assert gtc.resting == "limit"


def test_restarting_the_session_opens_the_market_now(clock: FakeClock) -> None:
    engine = _sessions(clock)
    _to_close(clock, engine)
    waiting = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    clock.tick(ACK_MAX_MS)
    engine.advance()

    engine.restart_session()

    assert engine.session.is_open
    assert waiting.submitted_us == to_us(clock())
    assert waiting.resting == "limit"


def test_pending_cancel_can_still_expire_at_the_close(clock: FakeClock) -> None:
    engine = _sessions(clock, cancel_delay_ms=(50, 50))
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    clock.tick(ACK_MAX_MS)
    _to_close(clock, engine, after_ms=-10)

    engine.cancel(placed.id)
    clock.tick(100)
    engine.advance()

    assert statuses(placed) == ["accepted", "new", "pending_cancel", "expired"]
    assert placed.canceled_us is None


def test_pending_cancel_can_still_be_rejected(clock: FakeClock) -> None:
    engine = make_engine(clock, ack_delay_ms=(5, 5), cancel_delay_ms=(50, 50))
    placed = engine.submit(order(), reject=True)

    engine.cancel(placed.id)
    clock.tick(100)
    engine.advance()

    assert statuses(placed) == ["accepted", "pending_cancel", "rejected"]
    assert placed.failed_us is not None
    assert placed.canceled_us is None


def test_same_timestamp_orders_share_created_and_submitted_to_the_microsecond(
    clock: FakeClock,
) -> None:
    engine = make_engine(clock)
    first = engine.submit(order(type=OrderType.LIMIT, limit="1.00"))
    clock.tick(0.3)
    pending = engine.submit(order(type=OrderType.LIMIT, limit="1.00"), same_timestamp=True)
    clock.tick(20)
    engine.advance()
    routed = engine.submit(order(type=OrderType.LIMIT, limit="1.00"), same_timestamp=True)
    clock.tick(20)
    engine.advance()
    apart = engine.submit(order(type=OrderType.LIMIT, limit="1.00"))
    clock.tick(20)
    engine.advance()

    assert first.created_us == pending.created_us == routed.created_us
    assert first.submitted_us == pending.submitted_us == routed.submitted_us
    assert first.created_us < first.submitted_us
    assert apart.created_us > first.created_us
    listed = list_orders(engine, status="all", direction="asc")
    assert [o.id for o in listed] == [o.id for o in (first, pending, routed, apart)]
    tied = list_orders(
        engine, status="all", after_us=first.submitted_us - 1, until_us=first.submitted_us + 1
    )
    assert len(tied) == 3


def test_the_clock_reports_the_session(clock: FakeClock) -> None:
    engine = _sessions(clock)
    start = to_us(clock())
    close = start + int(SESSION_S * 1_000_000)
    reopen = close + int(OVERNIGHT_S * 1_000_000)

    open_clock = clock_json(engine)
    _to_close(clock, engine)
    closed_clock = clock_json(engine)

    assert open_clock == {
        "timestamp": "2026-03-02T09:30:00.000000-05:00",
        "is_open": True,
        "next_open": "2026-03-02T09:31:30.000000-05:00",
        "next_close": "2026-03-02T09:31:00.000000-05:00",
    }
    assert closed_clock["is_open"] is False
    assert closed_clock["timestamp"] == "2026-03-02T09:31:00.000000-05:00"
    assert closed_clock["next_open"] == "2026-03-02T09:31:30.000000-05:00"
    assert closed_clock["next_close"] == "2026-03-02T09:32:30.000000-05:00"
    assert (close, reopen) == (start + 60_000_000, start + 90_000_000)


def test_a_market_that_never_closes_says_so(clock: FakeClock) -> None:
    engine = make_engine(clock, session_s=0)
    clock.tick(10**7)
    engine.advance()

    answer = clock_json(engine)

    assert answer["is_open"] is True
    assert answer["next_close"] == answer["next_open"] == "9999-12-30T19:00:00.000000-05:00"
    assert to_us(clock()) < NEVER_US
