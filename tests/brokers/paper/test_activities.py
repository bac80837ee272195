"""FILL activities as Alpaca lists them: Eastern-time ids with random uuids, late ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.alpaca.paper.queries import list_fills
from brokers.paper.engine import Engine
from brokers.paper.model import Fill, eastern_wall, from_us, parse_time, to_us, wall_stamp
from core.enums import OrderType
from tests.brokers.paper import FakeClock, make_engine, order

ACTIVITY_ID = re.compile(
    r"\d{17}::[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def _resting(engine: Engine, qty: str = "10") -> str:
    return engine.submit(order(type=OrderType.LIMIT, limit="1.00", qty=qty)).id


@pytest.mark.parametrize(
    ("utc", "stamp"),
    [
        ("2019-05-24T15:34:06.977Z", "20190524113406977"),  # EDT: UTC-4 (Alpaca's example)
        ("2026-01-15T15:34:06.977999Z", "20260115103406977"),  # EST: UTC-5, ms truncated
        ("2026-03-08T07:00:00.000Z", "20260308030000000"),  # just after spring forward
        ("2026-11-01T05:30:00.000Z", "20261101013000000"),  # 01:30 EDT ...
        ("2026-11-01T06:30:00.000Z", "20261101013000000"),  # ... and 01:30 EST again
    ],
)
def test_activity_ids_carry_the_fill_time_in_us_eastern(utc: str, stamp: str) -> None:
    clock = FakeClock(datetime.fromisoformat(utc.replace("Z", "+00:00")))
    engine = make_engine(clock)

    fill = engine.force_fill(_resting(engine))

    assert ACTIVITY_ID.fullmatch(fill.id)
    assert fill.id.split("::")[0] == stamp
    assert fill.time_us == parse_time(utc)


def test_the_uuid_part_is_random_not_a_sequence(clock: FakeClock) -> None:
    engine = make_engine(clock)
    ids = [engine.force_fill(_resting(engine, "1")).id for _ in range(50)]

    tails = [fill_id.split("::")[1] for fill_id in ids]
    assert len(set(ids)) == 50
    assert tails != sorted(tails)  # all in one millisecond, so arrival order is not id order
    listed = list_fills(engine, direction="asc")
    assert [f.id for f in listed] == sorted(ids)


def test_a_late_activity_changes_the_order_at_once_but_is_listed_later(clock: FakeClock) -> None:
    engine = make_engine(clock)
    late_id = _resting(engine)
    engine.activity_delay_us = lambda: 2_000_000
    late = engine.force_fill(late_id, Decimal(4))
    engine.activity_delay_us = lambda: 0
    clock.tick(1)
    on_time = engine.force_fill(_resting(engine))

    order_now = engine.get(late_id)
    assert order_now is not None
    assert (order_now.filled_qty, order_now.status.value) == (Decimal(4), "partially_filled")
    assert late.visible_us == late.time_us + 2_000_000
    assert on_time.visible_us == on_time.time_us
    assert late.id < on_time.id  # its id still carries its own (earlier) time
    assert list_fills(engine, direction="asc") == [on_time]

    # A client paging forward from the newest activity it has seen steps past it for good.
    cursor = on_time.id
    clock.tick(2000)
    assert list_fills(engine, direction="asc", page_token=cursor) == []
    assert list_fills(engine, direction="asc") == [late, on_time]


def test_late_activities_come_from_the_fault_hook_for_every_kind_of_fill(
    clock: FakeClock,
) -> None:
    engine = make_engine(clock, fill_delay_ms=(0, 0), partial_fill_probability=0.0)
    engine.activity_delay_us = lambda: 10_000
    engine.submit(order())
    clock.tick(5)  # acknowledged and filled by now (no fill delay)
    engine.advance()
    [fill] = engine.fills
    assert list_fills(engine) == []
    clock.now = from_us(fill.visible_us - 1)
    assert list_fills(engine) == []

    clock.tick(us=1)

    assert list_fills(engine) == [fill]


def _fills_around_the_fall_back(step_min: int = 7) -> tuple[Engine, list[Fill]]:
    """Fills every few minutes from 00:30 EDT to 02:30 EST on 2026-11-01: the wall-clock
    hour 01:00-02:00 happens twice, so ids do not follow time there."""
    clock = FakeClock(datetime(2026, 11, 1, 4, 30, tzinfo=UTC))
    engine = make_engine(clock, session_s=0)
    fills = []
    while clock.now < datetime(2026, 11, 1, 7, 30, tzinfo=UTC):
        fills.append(engine.force_fill(_resting(engine, "1")))
        clock.tick(step_min * 60_000 + 123)
    return engine, fills


_FALL_BACK = _fills_around_the_fall_back()


@settings(max_examples=300, deadline=None)
@given(
    after_min=st.integers(-10, 200) | st.none(),
    until_min=st.integers(-10, 200) | st.none(),
    descending=st.booleans(),
)
def test_time_windows_are_exact_even_when_eastern_time_repeats(
    after_min: int | None, until_min: int | None, descending: bool
) -> None:
    engine, fills = _FALL_BACK
    origin = to_us(datetime(2026, 11, 1, 4, 30, tzinfo=UTC))
    after = None if after_min is None else origin + after_min * 60_000_000 + 61
    until = None if until_min is None else origin + until_min * 60_000_000 + 61

    listed = list_fills(
        engine,
        after_us=after,
        until_us=until,
        direction="desc" if descending else "asc",
        page_size=100,
    )

    expected = sorted(
        (
            f
            for f in fills
            if (after is None or f.time_us > after) and (until is None or f.time_us < until)
        ),
        key=lambda f: f.id,
        reverse=descending,
    )
    assert listed == expected


def test_the_repeated_hour_really_breaks_id_order() -> None:
    _, fills = _FALL_BACK
    assert [f.id for f in fills] != sorted(f.id for f in fills)
    stamps = [wall_stamp(eastern_wall(f.time_us)) for f in fills]
    assert stamps == [f.id.split("::")[0] for f in fills]
    assert from_us(fills[-1].time_us) - from_us(fills[0].time_us) > timedelta(hours=2)
