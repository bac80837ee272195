"""The order state machine: one transition table and I/O-free functions that apply a
normalized broker report or fill to a snapshot of an order.

Rules (design.md): filled quantity never decreases and never exceeds the order quantity;
recorded fills are unique by broker fill id and their sum is the filled quantity; the
average price is the quantity-weighted mean of the fills; duplicate and stale reports change
nothing; an illegal report is recorded as an anomaly with the raw report and never raises.
``broker_filled_quantity`` is what the broker says is filled; when it runs ahead of the
recorded fills the order has a fill gap that reconciliation closes by fetching the fills.

A notional order names an amount of money, not a quantity: the broker sizes it as it fills,
so it is FILLED when the broker says so, and its overfill is in money: its fills (quantity
times price, summed) may come to at most ``notional`` plus ``NOTIONAL_TOLERANCE``, a cent of
the broker's rounding.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Final

from core.enums import OrderStatus as S
from core.reports import FillReport, OrderReport
from models.money import in_money_context

ZERO = Decimal(0)
MAX_PLACES = 18  # what the money columns hold; more would be rounded, so it is refused
MAX_INTEGER_DIGITS = 20


def storable(value: Decimal) -> bool:
    """Finite, at most 18 decimal places and 20 integer digits (NUMERIC(38, 18))."""
    if not value.is_finite():
        return False
    exponent = value.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return places <= MAX_PLACES and value.adjusted() < MAX_INTEGER_DIGITS


AVERAGE_PRICE_QUANTUM: Final = Decimal("1e-10")
NOTIONAL_QUANTUM: Final = Decimal("1e-18")
# How far a notional order's fills may come above its notional: the broker rounds each
# execution's fractional quantity and price, a cent at most; more is an overfill.
NOTIONAL_TOLERANCE: Final = Decimal("0.01")

TRANSITIONS: Final[Mapping[S, frozenset[S]]] = {
    S.PENDING_NEW: frozenset({S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELED,
                              S.EXPIRED}),
    S.NEW: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED,
                      S.REPLACED, S.REJECTED}),
    # REJECTED after fills: the broker refused the rest; the fills stand (see _ending_detail)
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                                   S.EXPIRED, S.REPLACED, S.REJECTED}),
    # NEW: the cancel was refused; EXPIRED, REJECTED, REPLACED: the broker ended it first
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.NEW, S.EXPIRED,
                                 S.REJECTED, S.REPLACED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),  # terminal for status; late fills may still add quantity
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REPLACED: frozenset(),
}  # fmt: skip


def fill_keys(broker_fill_id: str, cum_quantity: Decimal | None) -> frozenset[str]:
    """What identifies an execution of an order: its id, and, where the broker gives it, the
    order's filled quantity with it (one execution reported under two ids, as a listing and
    a stream may, has one cumulative quantity)."""
    if cum_quantity is None:
        return frozenset({broker_fill_id})
    return frozenset({broker_fill_id, f"cum:{format(cum_quantity.normalize(), 'f')}"})


def can_transition(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


class Verdict(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    ANOMALY = "anomaly"


class HistoryKind(StrEnum):
    TRANSITION = "transition"  # the status changed
    PROGRESS = "progress"  # same status, the broker reports more filled
    LATE_FILL = "late_fill"  # quantity added to a CANCELED order
    ANOMALY = "anomaly"  # not applied; the raw report is kept


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the state machine needs to know of an order; built from the row, no I/O."""

    status: S
    quantity: Decimal | None  # None for a notional order
    filled_quantity: Decimal = ZERO
    broker_filled_quantity: Decimal = ZERO
    fill_notional: Decimal = ZERO
    fees: Decimal = ZERO
    fill_ids: frozenset[str] = frozenset()  # ids and cumulative keys (``fill_keys``)
    broker_order_id: str | None = None
    raw_status: str | None = None
    broker_updated_at: datetime | None = None
    accepted_at: datetime | None = None
    filled_at: datetime | None = None
    closed_at: datetime | None = None
    notional: Decimal | None = None  # the amount of money a notional order names

    @property
    def ordered(self) -> str:
        """What the order is for, as messages say it: its quantity, or "$500"."""
        if self.quantity is not None:
            return format(self.quantity, "f")
        return f"${format(self.notional or ZERO, 'f')}"

    @property
    def concluded_locally(self) -> bool:
        """REJECTED by our own conclusion (no broker status behind it): the broker may still
        show the order, and then its truth wins (``local_transition`` clears ``raw_status``)."""
        return self.status is S.REJECTED and self.raw_status is None

    @property
    def average_fill_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        with localcontext() as ctx:
            ctx.prec = 60
            return (self.fill_notional / self.filled_quantity).quantize(
                AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN
            )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: HistoryKind
    from_status: S
    to_status: S
    filled_quantity: Decimal
    raw_status: str | None
    detail: str | None = None
    report: str | None = None  # JSON of the report, kept for anomalies

    @property
    def overturns(self) -> bool:
        """Out of a terminal status: only the broker overturning our own conclusion does that."""
        return self.kind is HistoryKind.TRANSITION and self.from_status.is_terminal


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of applying one report: the new state and what to write."""

    state: OrderState
    verdict: Verdict
    new_fills: tuple[FillReport, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    @property
    def anomalies(self) -> tuple[HistoryEntry, ...]:
        return tuple(h for h in self.history if h.kind is HistoryKind.ANOMALY)


def report_json(report: OrderReport | FillReport) -> str:
    """A readable, lossless rendering of a report for the history table."""
    data = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    if isinstance(report, OrderReport):
        data["fills"] = [report_json(f) for f in report.fills]
        data["raw"] = report.raw
    return json.dumps(data, default=str, sort_keys=True)


def _anomaly(state: OrderState, detail: str, report: OrderReport | FillReport) -> HistoryEntry:
    return HistoryEntry(
        kind=HistoryKind.ANOMALY,
        from_status=state.status,
        to_status=state.status,
        filled_quantity=state.filled_quantity,
        raw_status=getattr(report, "raw_status", None),
        detail=detail,
        report=report_json(report),
    )


def _entered(state: OrderState, target: S, now: datetime, filled_at: datetime | None) -> OrderState:
    """Set the status and the timestamps that entering ``target`` implies."""
    return dataclasses.replace(
        state,
        status=target,
        accepted_at=state.accepted_at
        or (now if state.status is S.PENDING_NEW and target is not S.REJECTED else None),
        filled_at=state.filled_at or ((filled_at or now) if target is S.FILLED else None),
        closed_at=state.closed_at or (now if target.is_terminal else None),
    )


def _fill_problem(state: OrderState, fill: FillReport, vouched: Decimal) -> str | None:
    """Why the fill cannot be recorded, if it cannot (``vouched``: what the broker says is
    filled, the most a rejected order's fills may come to)."""
    problem = None
    if state.broker_order_id and fill.broker_order_id != state.broker_order_id:
        problem = f"fill is for broker order {fill.broker_order_id}, not {state.broker_order_id}"
    elif not fill.quantity.is_finite() or fill.quantity <= ZERO:
        problem = f"fill quantity {fill.quantity} is not positive"
    elif not fill.price.is_finite() or fill.price <= ZERO:
        problem = f"fill price {fill.price} is not positive"
    elif not (storable(fill.fee) and storable(fill.quantity) and storable(fill.price)):
        problem = f"fill {fill.quantity} @ {fill.price} fee {fill.fee} cannot be stored exactly"
    elif (
        state.status is S.REJECTED
        and not state.concluded_locally
        and (state.filled_quantity + fill.quantity > vouched)
    ):
        problem = f"fill for a rejected order (the broker reported {vouched} filled)"
    elif state.quantity is None:
        problem = _notional_overfill(state, fill)
    elif state.filled_quantity + fill.quantity > state.quantity:
        problem = (
            f"overfill: {state.filled_quantity} + {fill.quantity} exceeds quantity {state.quantity}"
        )
    return problem


def _notional_overfill(state: OrderState, fill: FillReport) -> str | None:
    """A notional order's fills may come to its notional and a cent of rounding, no more."""
    if state.notional is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        total = state.fill_notional + fill.quantity * fill.price
    if total <= state.notional + NOTIONAL_TOLERANCE:
        return None
    return (f"overfill: fills come to ${format(total.normalize(), 'f')} with "
            f"{fill.quantity} @ {fill.price}, more than the order's {state.ordered}")  # fmt: skip


@in_money_context
def apply_fill(state: OrderState, fill: FillReport, *, now: datetime) -> Applied:
    """Record one execution once; a fill that would break an invariant is an anomaly."""
    return _apply_fill(state, fill, now, state.broker_filled_quantity)


def _apply_fill(state: OrderState, fill: FillReport, now: datetime, vouched: Decimal) -> Applied:
    """``apply_fill``, the fill judged against ``vouched`` (a report judges its own fills by
    its own figures, so applying it once or twice comes to the same)."""
    keys = fill_keys(fill.broker_fill_id, fill.cum_quantity)
    if not keys.isdisjoint(state.fill_ids):
        return Applied(state, Verdict.DUPLICATE)
    problem = _fill_problem(state, fill, vouched)
    if problem:
        return Applied(state, Verdict.ANOMALY, history=(_anomaly(state, problem, fill),))
    history: tuple[HistoryEntry, ...] = ()
    if state.concluded_locally:  # an execution proves the order reached the broker
        evidence = (
            f"the broker reports fill {fill.broker_fill_id!r} "
            f"({fill.quantity} @ {fill.price}) of order {fill.broker_order_id}"
        )
        state, overturn = _reopened(state), _overturn_entry(state, evidence, None)
        history = (overturn,)

    filled = state.filled_quantity + fill.quantity
    with localcontext() as ctx:
        ctx.prec = 60
        notional = (state.fill_notional + fill.quantity * fill.price).quantize(NOTIONAL_QUANTUM)
    new = dataclasses.replace(
        state,
        filled_quantity=filled,
        broker_filled_quantity=max(state.broker_filled_quantity, filled),
        fill_notional=notional,
        fees=state.fees + fill.fee,
        fill_ids=state.fill_ids | keys,
    )
    target = state.status
    # A notional order has no quantity to reach: it is FILLED when the broker says so.
    if filled == state.quantity and can_transition(state.status, S.FILLED):
        target = S.FILLED
    elif state.status in (S.PENDING_NEW, S.NEW):
        target = S.PARTIALLY_FILLED
    if target is not state.status:
        # The broker's last status string no longer describes the order: unknown until its
        # next report (a fill-settled order may never get one).
        new = dataclasses.replace(_entered(new, target, now, fill.filled_at), raw_status=None)
        history += (
            HistoryEntry(HistoryKind.TRANSITION, state.status, target, filled, state.raw_status),
        )
    return Applied(new, Verdict.APPLIED, new_fills=(fill,), history=history)


def _reopened(state: OrderState) -> OrderState:
    """A REJECTED we concluded, back to PENDING_NEW (the status it had), where the broker's
    report or fill applies as to any write-ahead row."""
    return dataclasses.replace(state, status=S.PENDING_NEW, closed_at=None)


def _overturn_entry(state: OrderState, evidence: str, raw_status: str | None) -> HistoryEntry:
    """The history row that says our conclusion gave way, and to what."""
    return HistoryEntry(
        HistoryKind.TRANSITION, state.status, S.PENDING_NEW, state.broker_filled_quantity,
        raw_status,
        detail=f"local conclusion overturned: {state.status} was ours, not the broker's, "
        f"and {evidence}",
    )  # fmt: skip


class IllegalTransition(ValueError):
    """A local action asked for a transition the table forbids; callers check first."""

    def __init__(self, current: S, target: S) -> None:
        self.current = current
        self.target = target
        super().__init__(f"{current} -> {target} is not allowed")


def local_transition(state: OrderState, target: S, *, now: datetime, detail: str) -> Applied:
    """A change we make ourselves (a refused placement, a cancel request), by the table. A
    REJECTED of ours carries no broker status: that is how it stays open to the broker."""
    if not can_transition(state.status, target):
        raise IllegalTransition(state.status, target)
    entry = HistoryEntry(
        HistoryKind.TRANSITION, state.status, target, state.broker_filled_quantity,
        state.raw_status, detail=detail,
    )  # fmt: skip
    new = _entered(state, target, now, None)
    if target is S.REJECTED:
        new = dataclasses.replace(new, raw_status=None)
    return Applied(new, Verdict.APPLIED, history=(entry,))


def _is_stale(state: OrderState, report: OrderReport) -> bool:
    """Older than what we know: less filled, an earlier broker time, or a pre-ack echo."""
    if report.filled_quantity < max(state.broker_filled_quantity, state.filled_quantity):
        return True
    known_at = state.broker_updated_at
    if report.updated_at and known_at and report.updated_at < known_at:
        return True
    return report.status is S.PENDING_NEW and state.status is not S.PENDING_NEW


def _report_problem(state: OrderState, report: OrderReport) -> str | None:
    if state.broker_order_id and report.broker_order_id != state.broker_order_id:
        return f"report is for broker order {report.broker_order_id}, not {state.broker_order_id}"
    if not report.states_terms:
        pass  # nothing said of what was ordered: nothing to compare it with
    elif state.quantity is None:  # notional: the broker's quantity, if any, is its own
        if report.notional != state.notional:
            return f"broker order is for {_ordered(report)}, ours for {state.ordered}"
    elif report.quantity != state.quantity:
        return f"broker quantity {_ordered(report)} differs from ours {state.quantity}"
    if not storable(report.filled_quantity) or report.filled_quantity < ZERO:
        return f"broker filled quantity {report.filled_quantity} is invalid"
    if state.quantity is not None and report.filled_quantity > state.quantity:
        return f"overfill: broker reports {report.filled_quantity} filled of {state.quantity}"
    return None


def _ordered(report: OrderReport) -> str:
    """What the broker's order is for, as ``OrderState.ordered`` says ours."""
    if report.notional is not None:
        return f"${format(report.notional, 'f')}"
    return "no quantity" if report.quantity is None else format(report.quantity, "f")


def _target_status(state: OrderState, report: OrderReport) -> tuple[S, HistoryKind] | str:
    """The status after the report and the kind of change, or why it is illegal."""
    current, target = state.status, report.status
    if target is current:
        return current, HistoryKind.PROGRESS
    if can_transition(current, target):
        return target, HistoryKind.TRANSITION
    if current is S.PENDING_NEW and can_transition(S.NEW, target):
        return target, HistoryKind.TRANSITION  # we missed the acknowledgement
    more_filled = report.filled_quantity > state.broker_filled_quantity
    if current is S.CANCELED and target in (S.PARTIALLY_FILLED, S.FILLED) and more_filled:
        return current, HistoryKind.LATE_FILL
    return f"illegal transition {current} -> {target} (broker status {report.raw_status!r})"


def _gives_way(state: OrderState, report: OrderReport) -> bool:
    """Our own REJECTED yields to a current report of the order in any other status (one
    saying REJECTED only confirms it: it then becomes the broker's, and final)."""
    return (
        state.concluded_locally
        and report.status is not S.REJECTED
        and not _is_stale(_reopened(state), report)
    )


def _ending_detail(current: S, target: S, state: OrderState, report: OrderReport) -> str | None:
    """What the broker's truth means where an open order ends unusually."""
    notes = []
    if target is S.REPLACED:
        by = f"broker order {report.replaced_by}" if report.replaced_by else None
        notes.append(f"replaced by {by or 'an order the broker did not name'}")
    if current is S.PENDING_CANCEL and target in (S.EXPIRED, S.REJECTED, S.REPLACED):
        notes.append(f"the broker ended the order as {target} before acting on the cancel")
    if target is S.REJECTED and state.broker_filled_quantity > ZERO:
        notes.append(
            f"rejected after {state.broker_filled_quantity} of {state.ordered} filled: the "
            "fills stand, the unfilled rest never will"
        )
    return "; ".join(notes) or None


@in_money_context
def apply_report(state: OrderState, report: OrderReport, *, now: datetime) -> Applied:
    """Apply the broker's view of an order; never raises for bad or out-of-order reports."""
    problem = _report_problem(state, report)
    if problem and state.broker_order_id and report.broker_order_id != state.broker_order_id:
        return Applied(state, Verdict.ANOMALY, history=(_anomaly(state, problem, report),))

    current, history = state, []
    if not problem and _gives_way(state, report):
        evidence = f"the broker reports order {report.broker_order_id} as {report.raw_status!r}"
        current = _reopened(state)
        history.append(_overturn_entry(state, evidence, report.raw_status))
    # Fills are facts: each is applied on its own merits, whatever the report's age.
    new_fills: list[FillReport] = []
    vouched = max(state.broker_filled_quantity, ZERO if problem else report.filled_quantity)
    for fill in report.fills:
        result = _apply_fill(current, fill, now, vouched)
        current = result.state
        new_fills.extend(result.new_fills)
        history.extend(result.history)

    if problem:
        history.append(_anomaly(current, problem, report))
        return Applied(current, Verdict.ANOMALY, tuple(new_fills), tuple(history))
    if _is_stale(current, report):
        verdict = Verdict.APPLIED if new_fills else Verdict.STALE
        return Applied(current, verdict, tuple(new_fills), tuple(history))

    outcome = _target_status(current, report)
    if isinstance(outcome, str):
        history.append(_anomaly(current, outcome, report))
        return Applied(current, Verdict.ANOMALY, tuple(new_fills), tuple(history))
    target, kind = outcome

    updated = dataclasses.replace(
        current,
        broker_order_id=current.broker_order_id or report.broker_order_id,
        broker_filled_quantity=max(current.broker_filled_quantity, report.filled_quantity),
        raw_status=report.raw_status,
        broker_updated_at=max(
            filter(None, (current.broker_updated_at, report.updated_at)), default=None
        ),
    )
    if target is not current.status:
        updated = _entered(updated, target, now, report.filled_at)
    if updated.broker_filled_quantity != current.broker_filled_quantity or target is not (
        current.status
    ):
        history.append(
            HistoryEntry(
                kind,
                current.status,
                target,
                updated.broker_filled_quantity,
                report.raw_status,
                detail=_ending_detail(current.status, target, updated, report),
            )
        )
    changed = updated != state
    verdict = Verdict.APPLIED if changed else Verdict.DUPLICATE
    return Applied(updated, verdict, tuple(new_fills), tuple(history))
