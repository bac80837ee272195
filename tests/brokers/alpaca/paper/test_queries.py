"""Order lists and FILL activities page exactly: time order, exclusive bounds, tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.alpaca.paper.queries import Direction, list_fills, list_orders
from brokers.paper.engine import Engine
from brokers.paper.model import Fill, PaperStatus
from core.enums import OrderType, Side
from tests.brokers.paper import FakeClock, make_engine, order


def _busy_engine(clock: FakeClock) -> Engine:
    """Twenty fully or partly filled orders, several fills per millisecond."""
    engine = make_engine(clock, 3, partial_fill_probability=1.0, fill_delay_ms=(0, 2))
    for index in range(20):
        engine.submit(order(symbol="AAPL" if index % 2 else "MSFT", qty=str(index + 5)))
        clock.tick(0.3)
    clock.tick(50)
    engine.advance()
    return engine


def _all_pages(engine: Engine, direction: Direction, page_size: int) -> list[Fill]:
    seen: list[Fill] = []
    token = None
    for _ in range(len(engine.fills) + 1):  # bounded: a token that never advances must fail
        page = list_fills(engine, direction=direction, page_size=page_size, page_token=token)
        if not page:
            return seen
        seen.extend(page)
        token = page[-1].id
    raise AssertionError("paging did not end")


def _by_id(fills: list[Fill]) -> list[Fill]:
    return sorted(fills, key=lambda f: f.id)


def test_activities_list_by_id_so_one_millisecond_sorts_by_uuid_not_arrival(
    clock: FakeClock,
) -> None:
    engine = _busy_engine(clock)
    fills = engine.fills
    stamps = [f.id.split("::")[0] for f in fills]

    assert len(fills) > len(set(stamps))  # several fills share a millisecond
    assert len({f.id for f in fills}) == len(fills)
    assert [f.time_us for f in fills] == sorted(f.time_us for f in fills)  # arrival order
    assert [f.id for f in fills] != sorted(f.id for f in fills)  # which ids do not keep
    assert stamps == sorted(stamps)  # only the millisecond part follows time
    listed = list_fills(engine, direction="asc")
    assert listed == _by_id(fills)[:100]


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_paging_fills_visits_each_exactly_once(
    clock: FakeClock, direction: Direction, page_size: int
) -> None:
    engine = _busy_engine(clock)

    seen = _all_pages(engine, direction, page_size)

    expected = _by_id(engine.fills)
    if direction == "desc":
        expected.reverse()
    assert [f.id for f in seen] == [f.id for f in expected]


def test_a_page_token_is_exclusive_in_both_directions(clock: FakeClock) -> None:
    engine = _busy_engine(clock)
    ordered = _by_id(engine.fills)
    token = ordered[5].id

    after = list_fills(engine, direction="asc", page_token=token, page_size=3)
    before = list_fills(engine, direction="desc", page_token=token, page_size=3)

    assert after == ordered[6:9]
    assert before == ordered[4:1:-1]


def test_fill_windows_are_exclusive(clock: FakeClock) -> None:
    engine = _busy_engine(clock)
    fills = engine.fills
    first, last = fills[3], fills[-4]

    inside = list_fills(engine, after_us=first.time_us, until_us=last.time_us, direction="asc")

    assert inside
    assert all(first.time_us < f.time_us < last.time_us for f in inside)
    expected = [f for f in _by_id(fills) if first.time_us < f.time_us < last.time_us]
    assert inside == expected


def test_fills_by_date(clock: FakeClock) -> None:
    engine = _busy_engine(clock)
    day = clock.now.strftime("%Y-%m-%d")

    assert len(list_fills(engine, date=day)) == min(100, len(engine.fills))
    assert list_fills(engine, date="2020-01-01") == []


def test_forgotten_orders_vanish_from_lists_and_activities(clock: FakeClock) -> None:
    engine = _busy_engine(clock)
    victim = engine.orders[4]

    engine.forget(victim.id)

    listed = list_orders(engine, status="all", limit=500)
    assert victim not in listed
    assert len(listed) == 19
    assert all(f.order is not victim for f in _all_pages(engine, "asc", 5))


def test_list_orders_windows_filters_and_direction(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal("100.00"))
    placed = []
    for request in [
        order(type=OrderType.LIMIT, limit="50.00", side=Side.BUY),
        order(symbol="MSFT", type=OrderType.LIMIT, limit="50.00"),
        order(side=Side.SELL, type=OrderType.LIMIT, limit="150.00"),
        order(),  # fills: closed
        order(type=OrderType.LIMIT, limit="50.00"),
    ]:
        placed.append(engine.submit(request))
        clock.tick(10)  # acknowledged (so routed) before the next arrives
    clock.tick(1000)
    engine.advance()
    assert placed[3].status is PaperStatus.FILLED
    ids = [o.id for o in placed]

    def listed(**kw: object) -> list[str]:
        return [o.id for o in list_orders(engine, **kw)]  # type: ignore[arg-type]

    assert listed() == [ids[4], ids[2], ids[1], ids[0]]
    assert listed(direction="asc", status="all") == ids
    assert listed(status="closed") == [ids[3]]
    assert listed(status="all", limit=2) == [ids[4], ids[3]]
    after, until = placed[0].submitted_us, placed[4].submitted_us
    assert listed(status="all", after_us=after, until_us=until, direction="asc") == ids[1:4]
    assert listed(symbols={"MSFT"}) == [ids[1]]
    assert listed(side="sell") == [ids[2]]
