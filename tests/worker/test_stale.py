"""The stale-order classifier: each class, each threshold's edge, counts and capped ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.enums import OrderStatus, OrderType
from worker.stale import (
    LOST,
    MARKET_NOT_TERMINAL,
    PENDING_CANCEL,
    PENDING_NEW,
    STALE_CLASSES,
    UNCHECKED,
    OrderSnapshot,
    Thresholds,
    classify,
    stale_classes,
)

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
LIMITS = Thresholds(market_after_s=10, pending_after_s=60, unchecked_after_s=60)
TICK = timedelta(microseconds=1)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def order(
    *,
    id: str = "o-1",
    status: OrderStatus = OrderStatus.NEW,
    order_type: OrderType = OrderType.LIMIT,
    created: datetime | None = None,
    updated: datetime | None = None,
    checked: datetime | None = NOW,
    lost: datetime | None = None,
) -> OrderSnapshot:
    """A healthy open limit order unless told otherwise (checked just now)."""
    created = created or ago(3600)
    return OrderSnapshot(id, status, order_type, created, updated or created, checked, lost)


MARKET = OrderType.MARKET


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        # market orders: not terminal more than 10 s after creation
        (order(order_type=MARKET, created=ago(10)), []),
        (order(order_type=MARKET, created=ago(10) - TICK), [MARKET_NOT_TERMINAL]),
        (order(order_type=MARKET, created=ago(3), status=OrderStatus.PARTIALLY_FILLED), []),
        (
            order(
                order_type=MARKET,
                created=ago(11),
                status=OrderStatus.PENDING_CANCEL,
                updated=ago(1),
            ),
            [MARKET_NOT_TERMINAL],
        ),
        (order(order_type=MARKET, created=ago(3600), status=OrderStatus.FILLED), []),
        (order(order_type=MARKET, created=ago(3600), status=OrderStatus.CANCELED), []),
        # PENDING_NEW for more than 60 s since creation
        (order(status=OrderStatus.PENDING_NEW, created=ago(60)), []),
        (order(status=OrderStatus.PENDING_NEW, created=ago(60) - TICK), [PENDING_NEW]),
        (
            order(status=OrderStatus.PENDING_NEW, order_type=MARKET, created=ago(61)),
            [MARKET_NOT_TERMINAL, PENDING_NEW],
        ),
        # PENDING_CANCEL for more than 60 s since its last change
        (order(status=OrderStatus.PENDING_CANCEL, updated=ago(60)), []),
        (order(status=OrderStatus.PENDING_CANCEL, updated=ago(60) - TICK), [PENDING_CANCEL]),
        (order(status=OrderStatus.NEW, updated=ago(3600)), []),
        # not checked for more than 60 s (never checked: since creation)
        (order(checked=ago(60)), []),
        (order(checked=ago(60) - TICK), [UNCHECKED]),
        (order(checked=None, created=ago(60)), []),
        (order(checked=None, created=ago(60) - TICK), [UNCHECKED]),
        (order(checked=ago(3600), status=OrderStatus.EXPIRED), []),
        # lost: only lost, whatever else is wrong with it
        (order(lost=ago(1)), [LOST]),
        (
            order(lost=ago(1), order_type=MARKET, status=OrderStatus.PENDING_NEW, checked=None),
            [LOST],
        ),
        (order(lost=ago(1), status=OrderStatus.REPLACED), []),
    ],
)
def test_each_class_and_threshold_edge(snapshot: OrderSnapshot, expected: list[str]) -> None:
    assert stale_classes(snapshot, NOW, LIMITS) == expected


@pytest.mark.parametrize(
    ("limits", "snapshot", "stale"),
    [
        (Thresholds(5, 60, 60), order(order_type=MARKET, created=ago(5) - TICK), True),
        (Thresholds(30, 60, 60), order(order_type=MARKET, created=ago(11)), False),
        (Thresholds(10, 2, 60), order(status=OrderStatus.PENDING_NEW, created=ago(3)), True),
        (
            Thresholds(10, 600, 60),
            order(status=OrderStatus.PENDING_CANCEL, updated=ago(599)),
            False,
        ),
        (Thresholds(10, 60, 0.5), order(checked=ago(0.5) - TICK), True),
        (Thresholds(10, 60, 900), order(checked=ago(899)), False),
    ],
)
def test_thresholds_are_the_settings(
    limits: Thresholds, snapshot: OrderSnapshot, stale: bool
) -> None:
    assert bool(stale_classes(snapshot, NOW, limits)) is stale


def test_classify_counts_every_order_and_caps_the_ids_oldest_first() -> None:
    orders = [order(id=f"u-{i:03d}", checked=None, created=ago(1000 - i)) for i in range(120)] + [
        order(id="lost-1", lost=ago(5)),
        order(id="fine"),
    ]
    classes = classify(reversed(orders), NOW, LIMITS, ids_cap=50)
    assert list(classes) == list(STALE_CLASSES)
    assert classes[UNCHECKED].count == 120
    assert classes[UNCHECKED].order_ids == tuple(f"u-{i:03d}" for i in range(50))
    assert classes[LOST].count == 1
    assert classes[LOST].order_ids == ("lost-1",)
    for name in (MARKET_NOT_TERMINAL, PENDING_NEW, PENDING_CANCEL):
        assert classes[name].count == 0
        assert classes[name].order_ids == ()


def test_classify_of_nothing_is_all_zero() -> None:
    classes = classify([], NOW, LIMITS)
    assert {name: c.count for name, c in classes.items()} == dict.fromkeys(STALE_CLASSES, 0)


def test_time_zone_of_the_inputs_does_not_matter() -> None:
    snapshot = order(order_type=MARKET, created=ago(11))
    local = replace(
        snapshot, created_at=snapshot.created_at.astimezone(timezone(timedelta(hours=9)))
    )
    assert stale_classes(local, NOW, LIMITS) == [MARKET_NOT_TERMINAL]
