"""OANDA transactions as stream events: an order's create, fill, cancel or refusal, with the
order as it stands after it.

An order made while the stream listens is known from its create transaction (its full
terms) and its fills are summed as they come; an order made before is looked up by REST
(``get_order``) when a fill or a cancel of it arrives. A fill is ``parse.parse_fill``'s,
equal to what the REST fill listing gives for the same transaction (its id is the fill id),
and rides in the report's ``fills`` as in a REST order report, so it is recorded once
whichever path brings it first. Trade exits (take profit, stop loss) are OANDA's, never
ordersync's: they are left out, as the REST listings leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

from brokers.oanda import parse
from brokers.values import decimal, opt_text, text, when
from core.enums import OrderStatus
from core.reports import FillReport, OrderReport, StreamEvent

CREATE = "_ORDER"
REJECT = "_ORDER_REJECT"
Raw = dict[str, object]


class OrderLookup(Protocol):
    """An order as REST shows it now (``OandaBroker.get_order``)."""

    def get_order(self, broker_order_id: str) -> OrderReport: ...


@dataclass(slots=True)
class _Known:
    """An order seen made on this connection: as OANDA would show it, and its fills."""

    order: Raw
    fills: dict[str, FillReport] = field(default_factory=dict)

    def filled(self) -> tuple[Decimal, Decimal | None]:
        """The quantity filled and its average price."""
        quantity = sum((f.quantity for f in self.fills.values()), Decimal(0))
        if quantity == 0:
            return quantity, None
        return quantity, sum((f.quantity * f.price for f in self.fills.values()),
                             Decimal(0)) / quantity  # fmt: skip


def _base(kind: str, suffix: str) -> str | None:
    """An order type from a transaction type (``LIMIT_ORDER`` -> ``LIMIT``), if ours."""
    base = kind.removesuffix(suffix)
    if base == kind or base in parse.TRADE_EXIT_TYPES:
        return None
    return base


def _as_order(tx: Raw, base: str, state: str) -> Raw:
    """A create (or refused create) transaction as the order object OANDA would show."""
    return {**tx, "type": base, "state": state, "createTime": tx.get("time")}


class Orders:
    """The account's orders as this connection has seen them; ``forget`` after lost news."""

    def __init__(self, lookup: OrderLookup, home: str) -> None:
        self._lookup = lookup
        self._home = home
        self._known: dict[str, _Known] = {}

    def forget(self) -> None:
        """Transactions were lost: any order's fills may be missing, so none is trusted."""
        self._known.clear()

    def read(self, tx: Raw, *, late: bool = False) -> StreamEvent | None:
        """The event a transaction makes, if any (ParseError if unreadable; the lookup's
        BrokerError if it fails). ``late``: one read out of order or again, whose create
        is not taken as the start of an order's history."""
        kind = text(tx, "type")
        at, tx_id = when(tx, "time"), text(tx, "id")
        if kind == "ORDER_FILL":
            return self._fill(tx, kind, tx_id)
        if kind == "ORDER_CANCEL":
            report = self._cancelled(tx)
            return None if report is None else StreamEvent(kind, report, at, tx_id)
        if (base := _base(kind, REJECT)) is not None:
            refused = parse.parse_order(_as_order(tx, base, "PENDING"))
            reason = opt_text(tx, "rejectReason") or kind
            # No order was made: the refusal's transaction id stands for it.
            report = replace(refused, status=OrderStatus.REJECTED, raw_status=kind,
                             reject_reason=reason, updated_at=at)  # fmt: skip
            return StreamEvent(kind, report, at, tx_id)
        if (base := _base(kind, CREATE)) is not None:
            order = _as_order(tx, base, "PENDING")
            report = parse.parse_order(order)
            if not late:
                self._known.setdefault(tx_id, _Known(order))
            return StreamEvent(kind, report, at, tx_id)
        return None  # funding, financing, trade exits, refused cancels, ...

    def _fill(self, tx: Raw, kind: str, tx_id: str) -> StreamEvent | None:
        fill = parse.parse_fill(tx, self._home)
        known = self._known.get(fill.broker_order_id)
        if known is None:
            if not self._ours(tx):
                return None
            report = self._lookup.get_order(fill.broker_order_id)
            if fill not in report.fills:
                report = replace(report, fills=(*report.fills, fill))
            return StreamEvent(kind, report, fill.filled_at, tx_id, fill)
        known.fills[fill.broker_fill_id] = fill
        filled, average = known.filled()
        units = abs(decimal(known.order, "units"))
        done = filled >= units
        order = {**known.order, "state": "FILLED" if done else "PENDING"}
        if done:
            order["filledTime"] = tx.get("time")
        report = replace(
            parse.parse_order(order, parse.Outcome(fill=tx), self._home),
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            filled_quantity=filled, average_fill_price=average, updated_at=fill.filled_at,
        )  # fmt: skip
        return StreamEvent(kind, report, fill.filled_at, tx_id, fill)

    def _cancelled(self, tx: Raw) -> OrderReport | None:
        order_id = text(tx, "orderID")
        known = self._known.get(order_id)
        if known is None:
            return self._lookup.get_order(order_id) if self._ours(tx) else None
        order = {**known.order, "state": "CANCELLED"}
        if tx.get("replacedByOrderID") is not None:
            order["replacedByOrderID"] = tx["replacedByOrderID"]
        filled, average = known.filled()
        last = list(known.fills.values())[-1].raw if known.fills else None
        report = parse.parse_order(order, parse.Outcome(fill=last, cancel=tx), self._home)
        return replace(report, filled_quantity=filled, average_fill_price=average)

    @staticmethod
    def _ours(tx: Raw) -> bool:
        """Whether an unseen order's transaction may be ordersync's, worth a look-up: the
        orders it places carry a client id, and are never a trade's exits."""
        reason = str(tx.get("reason", "")).removesuffix(CREATE)
        return tx.get("clientOrderID") is not None and reason not in parse.TRADE_EXIT_TYPES
