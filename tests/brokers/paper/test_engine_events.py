"""The engine's listener hook: one event per lifecycle change, in order, at its engine time,
with the order as it is at that moment (what the trade_updates stream sends)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from decimal import Decimal

import pytest

from brokers.alpaca.paper.replace import NotReplaceableError
from brokers.paper.engine import DEFAULT_ACCOUNT, Engine
from brokers.paper.events import OrderEvent
from brokers.paper.model import NotCancelableError, Order, OrderChanges, PaperStatus
from core.enums import OrderType, Side, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, status_time

ACK_MS = 5
CANCEL_MS = 50
SESSION_S = 3600.0
OVERNIGHT_S = 600.0


@dataclass(frozen=True)
class Seen:
    """What a listener can see at the call: the record plus a copy of the order's state."""

    event: str
    order_id: str
    at_us: int
    status: str
    filled_qty: Decimal
    replaced_by: str | None
    fill_id: str | None
    position_qty: Decimal | None


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def __call__(self, record: OrderEvent) -> None:
        placed = record.order
        fill_id = None if record.fill is None else record.fill.id
        self.seen.append(
            Seen(
                record.event.value,
                placed.id,
                record.at_us,
                placed.status.value,
                placed.filled_qty,
                placed.replaced_by,
                fill_id,
                record.position_qty,
            )
        )

    def of(self, placed: Order) -> list[str]:
        return [seen.event for seen in self.seen if seen.order_id == placed.id]

    def kinds(self) -> list[tuple[str, str]]:
        return [(seen.event, seen.order_id) for seen in self.seen]


def _engine(clock: FakeClock, **config: object) -> tuple[Engine, Recorder]:
    """Fixed delays, no partial fills unless told; AAPL at 100.00 so a buy at 50.00 rests."""
    settings: dict[str, object] = {
        "ack_delay_ms": (ACK_MS, ACK_MS),
        "fill_delay_ms": (0, 0),
        "cancel_delay_ms": (CANCEL_MS, CANCEL_MS),
        "partial_fill_probability": 0.0,
        **config,
    }
    engine = make_engine(clock, **settings)
    engine.set_price("AAPL", Decimal("100.00"))
    recorder = Recorder()
    engine.listeners.append(recorder)
    return engine, recorder


def _resting(engine: Engine, clock: FakeClock, tif: TimeInForce = TimeInForce.GTC) -> Order:
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00", tif=tif))
    clock.tick(ACK_MS)
    engine.advance()
    assert placed.status is PaperStatus.NEW
    return placed


def _later(engine: Engine, clock: FakeClock, ms: float) -> None:
    clock.tick(ms)
    engine.advance()


def test_a_market_order_is_new_then_fills_each_at_its_own_time(clock: FakeClock) -> None:
    engine, recorder = _engine(clock, fill_delay_ms=(0, 300), partial_fill_probability=1.0)
    placed = engine.submit(order(qty="12"))
    assert recorder.seen == []  # accepted is not an event: new comes with the ack
    _later(engine, clock, 1000)

    seen = recorder.seen
    assert [s.event for s in seen] == ["new", *["partial_fill"] * (len(seen) - 2), "fill"]
    assert len(seen) >= 3
    assert seen[0].at_us == status_time(placed, PaperStatus.NEW)
    assert (seen[0].status, seen[0].fill_id, seen[0].position_qty) == ("new", None, None)
    fills = seen[1:]
    assert [s.fill_id for s in fills] == [f.id for f in placed.fills]
    assert [s.at_us for s in fills] == [f.time_us for f in placed.fills]
    assert [s.filled_qty for s in fills] == [f.cum_qty for f in placed.fills]
    assert [s.position_qty for s in fills] == [f.cum_qty for f in placed.fills]
    assert [s.status for s in fills] == [*["partially_filled"] * (len(fills) - 1), "filled"]


def test_position_qty_is_signed_and_zero_when_flat(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    engine.submit(order(qty="5", side=Side.SELL))
    _later(engine, clock, 100)
    engine.submit(order(qty="5"))
    _later(engine, clock, 100)

    positions = [s.position_qty for s in recorder.seen if s.event == "fill"]
    assert positions == [Decimal(-5), Decimal(0)]


def test_a_cancel_is_pending_cancel_then_canceled(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    placed = _resting(engine, clock)
    engine.cancel(placed.id)
    engine.cancel(placed.id)  # already pending: no second event
    _later(engine, clock, CANCEL_MS)

    assert recorder.of(placed) == ["new", "pending_cancel", "canceled"]
    assert recorder.seen[-1].at_us == placed.canceled_us
    assert recorder.seen[1].at_us == status_time(placed, PaperStatus.PENDING_CANCEL)


def test_a_fill_that_beats_the_cancel_is_followed_by_order_cancel_rejected(
    clock: FakeClock,
) -> None:
    engine, recorder = _engine(clock)
    placed = _resting(engine, clock)
    engine.cancel(placed.id)
    engine.force_fill(placed.id, price=Decimal("50.00"))
    _later(engine, clock, CANCEL_MS)  # the cancel's time comes: nothing more

    assert recorder.of(placed) == ["new", "pending_cancel", "fill", "order_cancel_rejected"]
    fill, refused = recorder.seen[-2:]
    assert fill.at_us == refused.at_us == placed.filled_us
    assert refused.status == "filled"


def test_a_partial_fill_while_pending_cancel_does_not_refuse_the_cancel(
    clock: FakeClock,
) -> None:
    engine, recorder = _engine(clock)
    placed = _resting(engine, clock)
    engine.cancel(placed.id)
    engine.force_fill(placed.id, qty=Decimal(4), price=Decimal("50.00"))
    _later(engine, clock, CANCEL_MS)

    assert recorder.of(placed) == ["new", "pending_cancel", "partial_fill", "canceled"]
    assert recorder.seen[2].status == "pending_cancel"


def test_a_replace_is_pending_replace_replaced_then_new_for_the_new_order(
    clock: FakeClock,
) -> None:
    engine, recorder = _engine(clock)
    old = _resting(engine, clock)
    new = engine.replace(old.id, DEFAULT_ACCOUNT, OrderChanges(limit_price=Decimal("51.00")))
    assert recorder.kinds()[-1] == ("pending_replace", old.id)
    _later(engine, clock, ACK_MS)

    assert recorder.kinds()[1:] == [
        ("pending_replace", old.id),
        ("replaced", old.id),
        ("new", new.id),
    ]
    replaced, renewed = recorder.seen[2:]
    assert replaced.replaced_by == new.id
    assert replaced.at_us == renewed.at_us == old.replaced_us


def test_a_fill_before_the_replacement_lands_rejects_the_replace(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    old = _resting(engine, clock)
    new = engine.replace(old.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(20)))
    engine.force_fill(old.id, price=Decimal("50.00"))
    _later(engine, clock, ACK_MS)

    assert recorder.kinds()[1:] == [
        ("pending_replace", old.id),
        ("fill", old.id),
        ("order_replace_rejected", old.id),
        ("rejected", new.id),
    ]
    assert recorder.seen[-2].status == "filled"
    assert recorder.seen[-1].at_us == new.failed_us


def test_a_cancel_of_a_pending_replace_order_is_refused_with_an_event(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    old = _resting(engine, clock)
    engine.replace(old.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(20)))
    with pytest.raises(NotCancelableError):
        engine.cancel(old.id)
    with pytest.raises(NotReplaceableError):  # a refused replace has no event
        engine.replace(old.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(30)))

    assert recorder.of(old) == ["new", "pending_replace", "order_cancel_rejected"]
    assert recorder.seen[-1].status == "pending_replace"


def test_a_rejected_order_has_only_rejected(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    placed = engine.submit(order(), reject=True)
    _later(engine, clock, ACK_MS)

    assert recorder.of(placed) == ["rejected"]


def test_an_ioc_remainder_is_canceled_after_its_fill(clock: FakeClock) -> None:
    engine, recorder = _engine(clock, partial_fill_probability=1.0)
    placed = engine.submit(order(qty="10", tif=TimeInForce.IOC))
    _later(engine, clock, ACK_MS)

    assert recorder.of(placed) == ["new", "partial_fill", "canceled"]
    assert len({s.at_us for s in recorder.seen}) == 1


def test_the_close_expires_day_orders_and_makes_filled_gtc_orders_done_for_day(
    clock: FakeClock,
) -> None:
    engine, recorder = _engine(clock, session_s=SESSION_S, overnight_s=OVERNIGHT_S)
    day = _resting(engine, clock, TimeInForce.DAY)
    gtc = _resting(engine, clock)
    engine.force_fill(gtc.id, qty=Decimal(3), price=Decimal("50.00"))
    closed = engine.close_day()
    at_close = engine.now_us
    _later(engine, clock, OVERNIGHT_S * 1000)  # the open: gtc resumes without an event

    assert (closed.expired, closed.done_for_day) == (1, 1)
    assert recorder.of(day) == ["new", "expired"]
    assert recorder.of(gtc) == ["new", "partial_fill", "done_for_day"]
    assert recorder.seen[-1].at_us == at_close
    assert gtc.status is PaperStatus.PARTIALLY_FILLED


def test_a_forgotten_order_has_no_events(clock: FakeClock) -> None:
    engine, recorder = _engine(clock)
    old = _resting(engine, clock)
    new = engine.replace(old.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(20)))
    engine.forget(old.id)
    _later(engine, clock, ACK_MS)

    assert recorder.kinds()[1:] == [("pending_replace", old.id), ("rejected", new.id)]


def test_listeners_are_kept_across_a_reset_and_called_in_order(clock: FakeClock) -> None:
    engine, first = _engine(clock)
    second = Recorder()
    engine.listeners.append(second)
    calls: list[str] = []
    engine.listeners.append(lambda record: calls.append(f"third:{record.event}"))
    engine.reset(engine.config)
    engine.set_price("AAPL", Decimal("100.00"))
    placed = _resting(engine, clock)

    assert first.of(placed) == second.of(placed) == ["new"]
    assert calls == ["third:new"]


def _changes(statuses: list[str]) -> list[str]:
    """Distinct consecutive statuses, without the resumption of a done_for_day order (its
    next partial fill shows it, or its fill skips it)."""
    kept: list[str] = []
    for status in statuses:
        resumed = status == "partially_filled" and kept[-1:] == ["done_for_day"]
        if kept[-1:] != [status] and not resumed:
            kept.append(status)
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_every_status_change_has_its_event_in_order(clock: FakeClock, seed: int) -> None:
    """A random workload: each order's statuses as its events saw them are its timeline
    (the acknowledgement's ``accepted`` aside, and a done_for_day order resuming at the open,
    which Alpaca does not report)."""
    engine, recorder = _engine(
        clock,
        fill_delay_ms=(0, 200),
        cancel_delay_ms=(0, 30),
        partial_fill_probability=0.5,
        session_s=2.0,
        overnight_s=0.5,
    )
    engine.frozen = False
    engine.volatility_bps = 80.0
    rng = random.Random(seed)
    for _ in range(120):
        roll = rng.random()
        open_orders = [o for o in engine.orders if o.is_open]
        if roll < 0.4 or not open_orders:
            kind = rng.choice([OrderType.MARKET, OrderType.LIMIT])
            price = f"{rng.randint(95, 105)}.00"
            tif = rng.choice([TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC])
            side = rng.choice([Side.BUY, Side.SELL])
            limit = price if kind is OrderType.LIMIT else None
            engine.submit(order(qty=str(rng.randint(1, 9)), side=side, type=kind, limit=limit,
                                tif=tif), reject=rng.random() < 0.05)  # fmt: skip
        elif roll < 0.6:
            target = rng.choice(open_orders)
            with contextlib.suppress(NotCancelableError):
                engine.cancel(target.id)
        elif roll < 0.75:
            target = rng.choice(open_orders)
            with contextlib.suppress(NotReplaceableError):
                engine.replace(target.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(9)))
        _later(engine, clock, rng.randint(0, 120))
    _later(engine, clock, 5000)

    changes = {"new", "partial_fill", "fill", "pending_cancel", "canceled", "expired",
               "done_for_day", "rejected", "pending_replace", "replaced"}  # fmt: skip
    for placed in engine.orders:
        streamed = [
            s.status for s in recorder.seen if s.order_id == placed.id and s.event in changes
        ]
        timeline = [status.value for status, _ in placed.timeline[1:]]
        assert _changes(streamed) == _changes(timeline), placed.id
    kinds = {s.event for s in recorder.seen}
    assert {"new", "fill", "canceled", "pending_replace", "replaced"} <= kinds
