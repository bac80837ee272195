"""Reconciliation decisions, free of I/O: which local order a broker report belongs to, and
what a miss means. Nobody declares an order lost on one miss (reconciliation-lessons.md):
only repeated misses, each after a targeted lookup, do; the broker's later truth still wins.
A write-ahead row rejected here is our conclusion, not the broker's: if the broker shows the
order later (paired by client order id), its report overturns the rejection.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from core.enums import OrderStatus
from core.reports import FillReport, OrderReport
from models.state_machine import AVERAGE_PRICE_QUANTUM, ZERO, OrderState


@dataclass(frozen=True, slots=True)
class LocalRef:
    """The few columns reconciliation needs of a local order."""

    id: str
    broker_order_id: str | None
    client_order_id: str
    status: OrderStatus
    created_at: datetime
    miss_count: int = 0
    lost: bool = False
    symbol: str | None = None  # for a lookup by client order id within a symbol


@dataclass(frozen=True, slots=True)
class Matched:
    pairs: list[tuple[LocalRef, OrderReport]] = field(default_factory=list)
    unknown: list[OrderReport] = field(default_factory=list)  # at the broker, not here
    unlisted: list[LocalRef] = field(default_factory=list)  # here, not in the listing


def match(local: Sequence[LocalRef], reports: Iterable[OrderReport]) -> Matched:
    """Pair reports with local orders by broker order id, else by client order id (a row we
    rejected as never placed has no broker id: its client id finds it)."""
    by_broker = {ref.broker_order_id: ref for ref in local if ref.broker_order_id}
    by_client = {ref.client_order_id: ref for ref in local}
    result = Matched()
    seen: set[str] = set()
    for report in reports:
        ref = by_broker.get(report.broker_order_id)
        if ref is None and report.client_order_id:
            ref = by_client.get(report.client_order_id)
        if ref is None:
            result.unknown.append(report)
        elif ref.id not in seen:
            seen.add(ref.id)
            result.pairs.append((ref, report))
    result.unlisted.extend(ref for ref in local if ref.id not in seen)
    return result


class MissAction(enum.Enum):
    WAIT = "wait"  # look again next time
    DECLARE_LOST = "declare_lost"  # alert; the order stays open until the broker says more
    REJECT = "reject"  # a write-ahead row the broker never received (until it shows it)


@dataclass(frozen=True, slots=True)
class MissVerdict:
    action: MissAction
    misses: int
    reason: str


def judge_miss(
    ref: LocalRef, *, now: datetime, lost_after_misses: int, pending_new_grace_s: float
) -> MissVerdict:
    """What one more miss (not listed, and not found by a targeted lookup) means."""
    misses = ref.miss_count + 1
    age_s = (now - ref.created_at).total_seconds()
    enough = misses >= lost_after_misses
    if ref.status is OrderStatus.PENDING_NEW and ref.broker_order_id is None:
        if enough and age_s >= pending_new_grace_s:
            return MissVerdict(
                MissAction.REJECT, misses,
                f"never reached the broker: client order id {ref.client_order_id!r} not found "
                f"in {misses} lookups over {age_s:.0f} s",
            )  # fmt: skip
        return MissVerdict(MissAction.WAIT, misses, f"not found at the broker ({misses})")
    if enough and not ref.lost:
        return MissVerdict(
            MissAction.DECLARE_LOST, misses,
            f"lost: the broker has not shown order {ref.broker_order_id or ref.client_order_id!r}"
            f" in {misses} lookups",
        )  # fmt: skip
    return MissVerdict(MissAction.WAIT, misses, f"not found at the broker ({misses})")


def derived_fill(state: OrderState, report: OrderReport, *, now: datetime) -> FillReport | None:
    """The execution a broker without a fill listing implies: what its cumulative figures
    add to the recorded fills. The id names the cumulative quantity, so a replay dedupes."""
    gap = report.filled_quantity - state.filled_quantity
    average = report.average_fill_price
    if gap <= 0 or average is None or average <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        price = (average * report.filled_quantity - state.fill_notional) / gap
        price = price.quantize(AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
    if price <= 0:  # the recorded fills disagree with the broker's average: use the average
        price = average
    fee = ZERO if report.fees is None else max(ZERO, report.fees - state.fees)
    return FillReport(
        broker_fill_id=f"derived-{report.broker_order_id}-{_plain(report.filled_quantity)}",
        broker_order_id=report.broker_order_id, symbol=report.symbol, side=report.side,
        quantity=gap, price=price, filled_at=report.filled_at or report.updated_at or now,
        fee=fee, client_order_id=report.client_order_id,
    )  # fmt: skip


def _plain(quantity: Decimal) -> str:
    """'3', '3.0' and '3.00' are one quantity, so one id."""
    return format(quantity.normalize(), "f")
