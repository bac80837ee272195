"""Market, limit and stop orders fill as a venue would, with an injected clock and RNG."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.paper.model import PaperStatus, to_us
from core.enums import OrderType, Side, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, status_time, statuses

FILL_WINDOW_MS = 300
ACK_MAX_MS = 5


def test_a_market_order_fills_once_within_the_delay_window() -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=0.0)
    placed = engine.submit(order(qty="10"))
    assert placed.status is PaperStatus.ACCEPTED

    clock.tick(ACK_MAX_MS + FILL_WINDOW_MS)
    engine.advance()

    assert placed.status is PaperStatus.FILLED
    assert statuses(placed) == ["accepted", "new", "filled"]
    [fill] = placed.fills
    assert fill.qty == Decimal(10)
    assert fill.is_final
    acked = status_time(placed, PaperStatus.NEW)
    assert placed.created_us < acked <= fill.time_us <= acked + FILL_WINDOW_MS * 1000
    assert placed.submitted_us == acked  # routed when acknowledged
    assert placed.filled_us == fill.time_us == placed.updated_us
    assert placed.avg_price == fill.price


@given(
    seed=st.integers(0, 2**32),
    qty=st.decimals(min_value=Decimal("1e-9"), max_value=Decimal(10_000), places=9),
)
def test_partial_fills_sum_to_qty_within_the_window(seed: int, qty: Decimal) -> None:
    clock = FakeClock()
    engine = make_engine(clock, seed, partial_fill_probability=1.0, starting_cash=Decimal(10**8))
    placed = engine.submit(order(qty=str(qty)))

    clock.tick(ACK_MAX_MS + FILL_WINDOW_MS)
    engine.advance()

    assert placed.status is PaperStatus.FILLED
    assert sum(f.qty for f in placed.fills) == qty == placed.filled_qty
    assert all(f.qty > 0 for f in placed.fills)
    assert 1 <= len(placed.fills) <= 4
    assert len(placed.fills) >= 2 or qty == Decimal("1e-9") or qty == 1
    acked = status_time(placed, PaperStatus.NEW)
    times = [f.time_us for f in placed.fills]
    assert times == sorted(times)
    assert acked <= times[0]
    assert times[-1] <= acked + FILL_WINDOW_MS * 1000
    assert [f.is_final for f in placed.fills] == [False] * (len(times) - 1) + [True]
    assert [f.cum_qty for f in placed.fills][-1] == qty


def test_partial_fills_walk_the_status_through_partially_filled() -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=1.0, fill_delay_ms=(200, 200))
    placed = engine.submit(order(qty="100"))

    clock.tick(ACK_MAX_MS + 200)
    engine.advance()

    assert statuses(placed) == ["accepted", "new", "partially_filled", "filled"]
    assert [f.order_status for f in placed.fills][-1] is PaperStatus.FILLED
    assert {f.order_status for f in placed.fills[:-1]} == {PaperStatus.PARTIALLY_FILLED}


def test_nothing_happens_before_the_clock_moves() -> None:
    clock = FakeClock()
    engine = make_engine(clock)
    placed = engine.submit(order())

    engine.advance()

    assert placed.status is PaperStatus.ACCEPTED
    assert placed.fills == []


def test_a_marketable_limit_fills_no_worse_than_its_limit() -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=1.0)
    engine.set_price("AAPL", Decimal("100.00"))
    buy = engine.submit(order(type=OrderType.LIMIT, limit="100.00", qty="50"))
    sell = engine.submit(order(side=Side.SELL, type=OrderType.LIMIT, limit="100.00", qty="50"))

    clock.tick(ACK_MAX_MS + FILL_WINDOW_MS)
    engine.advance()

    assert buy.status is sell.status is PaperStatus.FILLED
    assert all(f.price <= Decimal(100) for f in buy.fills)
    assert all(f.price >= Decimal(100) for f in sell.fills)


def test_a_resting_limit_fills_when_the_price_crosses() -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=0.0, fill_delay_ms=(0, 0))
    engine.set_price("AAPL", Decimal("100.00"))
    buy = engine.submit(order(type=OrderType.LIMIT, limit="95.00", tif=TimeInForce.GTC))
    sell = engine.submit(order(side=Side.SELL, type=OrderType.LIMIT, limit="105.00"))
    clock.tick(ACK_MAX_MS)
    engine.set_price("AAPL", Decimal("95.01"))
    engine.set_price("AAPL", Decimal("104.99"))
    assert buy.status is sell.status is PaperStatus.NEW

    engine.set_price("AAPL", Decimal("94.50"))
    engine.advance()

    assert buy.status is PaperStatus.FILLED
    assert buy.fills[0].price <= Decimal("95.00")
    assert sell.status is PaperStatus.NEW
    engine.set_price("AAPL", Decimal("105.00"))
    assert sell.status is PaperStatus.FILLED
    assert sell.fills[0].price >= Decimal("105.00")


@pytest.mark.parametrize(
    ("side", "stop", "below", "through"),
    [(Side.BUY, "110.00", "109.99", "110.00"), (Side.SELL, "90.00", "90.01", "90.00")],
)
def test_a_stop_becomes_a_market_order_when_the_price_reaches_it(
    side: Side, stop: str, below: str, through: str
) -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=0.0, fill_delay_ms=(0, 0))
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(side=side, type=OrderType.STOP, stop=stop))
    clock.tick(ACK_MAX_MS)
    engine.set_price("AAPL", Decimal(below))
    assert placed.status is PaperStatus.NEW

    engine.set_price("AAPL", Decimal(through))

    assert placed.status is PaperStatus.FILLED


def test_a_triggered_stop_limit_rests_as_a_limit() -> None:
    clock = FakeClock()
    engine = make_engine(clock, partial_fill_probability=0.0, fill_delay_ms=(0, 0))
    engine.set_price("AAPL", Decimal("100.00"))
    placed = engine.submit(order(type=OrderType.STOP_LIMIT, stop="110.00", limit="108.00"))
    clock.tick(ACK_MAX_MS)

    engine.set_price("AAPL", Decimal("112.00"))  # triggers, but 112 is above the limit
    assert placed.status is PaperStatus.NEW
    assert placed.resting == "limit"
    engine.set_price("AAPL", Decimal("107.50"))

    assert placed.status is PaperStatus.FILLED
    assert placed.fills[0].price <= Decimal("108.00")


def test_the_random_walk_moves_prices_in_cents_and_fills_resting_orders() -> None:
    clock = FakeClock()
    engine = make_engine(clock, frozen=False, volatility_bps=50.0, fill_delay_ms=(0, 0))
    engine.set_price("AAPL", Decimal("100.00"))
    buy = engine.submit(order(type=OrderType.LIMIT, limit="99.50", tif=TimeInForce.GTC))
    sell = engine.submit(order(side=Side.SELL, type=OrderType.LIMIT, limit="100.50"))
    seen = set()
    for _ in range(2000):
        clock.tick(100)
        engine.advance()
        seen.add(engine.book("AAPL").price)
        if not buy.is_open and not sell.is_open:
            break

    assert len(seen) > 10
    assert all(price == price.quantize(Decimal("0.01")) for price in seen)
    assert buy.status is sell.status is PaperStatus.FILLED


def test_twenty_thousand_resting_orders_cost_nothing_per_tick() -> None:
    clock = FakeClock()
    engine = make_engine(clock, frozen=False, volatility_bps=5.0, starting_cash=Decimal(10**8))
    engine.set_price("AAPL", Decimal("100.00"))
    for index in range(20_000):
        engine.submit(
            order(type=OrderType.LIMIT, limit=f"{1 + index % 50}.00", tif=TimeInForce.GTC)
        )
    clock.tick(10)
    engine.advance()
    started = to_us(clock())

    begun = time.perf_counter()
    clock.tick(100 * 1_000)  # 1,000 ticks; a scan of every order per tick would take seconds
    engine.advance()
    elapsed = time.perf_counter() - begun

    assert to_us(clock()) - started == 100_000_000
    assert elapsed < 1.0
    assert sum(book.live for book in engine.books.values()) == 20_000


def _run_session(step_ms: int) -> list[tuple[str, Decimal, Decimal, int]]:
    """The same orders on the same seed, the engine advanced every ``step_ms``."""
    clock = FakeClock()
    engine = make_engine(clock, 5, frozen=False, volatility_bps=30.0, partial_fill_probability=0.5)
    engine.set_price("AAPL", Decimal("100.00"))
    for index in range(10):
        engine.submit(order(qty=str(index + 1)))
        engine.submit(order(type=OrderType.LIMIT, limit=f"{99 + index * 0.2:.2f}"))
        engine.submit(order(side=Side.SELL, type=OrderType.STOP, stop=f"{99.5 - index * 0.1:.2f}"))
    for _ in range(0, 5_000, step_ms):
        clock.tick(step_ms)
        engine.advance()
    return [(f.order.client_order_id, f.qty, f.price, f.time_us) for f in engine.fills]


def test_outcomes_do_not_depend_on_how_often_the_engine_is_advanced() -> None:
    fine = _run_session(1)

    assert fine
    assert _run_session(1000) == fine
    assert _run_session(5000) == fine
