"""Alpaca's order replace rules (PATCH /v2/orders/{id}): which orders may be replaced, with
what, and the request for the order that takes their place. No state: the engine applies
them through ``brokers.alpaca.paper.rules``.
"""

from __future__ import annotations

from brokers.paper.model import Order, OrderChanges, OrderRequest, PaperStatus
from core.enums import OrderType

# Alpaca: "Order cannot be replaced when the status is accepted, pending_new, pending_cancel
# or pending_replace"; nor, here, while the venue has yet to take it (accepted_for_bidding,
# pending_review). Terminal orders cannot be either.
_NOT_REPLACEABLE = frozenset(
    {
        PaperStatus.ACCEPTED,
        PaperStatus.PENDING_NEW,
        PaperStatus.ACCEPTED_FOR_BIDDING,
        PaperStatus.PENDING_REVIEW,
        PaperStatus.PENDING_CANCEL,
        PaperStatus.PENDING_REPLACE,
    }
)
_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class NotReplaceableError(Exception):
    """The order's status forbids a replace (Alpaca answers 422 42210000)."""

    def __init__(self, order_id: str, status: PaperStatus) -> None:
        super().__init__(f"order {order_id} is not replaceable: status is {status.value}")
        self.order_id = order_id
        self.status = status


class OrderClassNotReplaceableError(Exception):
    """A bracket, OTO or OCO order or leg: not replaceable here (422 42210000); cancel it and
    place a new one."""

    def __init__(self, order_id: str, order_class: str) -> None:
        super().__init__(
            f"order is not replaceable: {order_class} orders and their legs cannot be "
            "replaced here; cancel and place a new order"
        )
        self.order_id = order_id
        self.order_class = order_class


class InvalidChangeError(ValueError):
    """A change the order cannot take, such as a limit price for a market order (422)."""

    def __init__(self, order_id: str, reason: str) -> None:
        super().__init__(reason)
        self.order_id = order_id
        self.reason = reason


def check_replaceable(order: Order) -> None:
    """Only an order the venue works may be replaced, and only one replace at a time; not
    an order of a class (bracket, OTO, OCO) nor its legs."""
    if order.order_class != "simple":
        raise OrderClassNotReplaceableError(order.id, order.order_class)
    if order.status in _NOT_REPLACEABLE or order.status.is_terminal:
        raise NotReplaceableError(order.id, order.status)


def check_changes(order: Order, changes: OrderChanges) -> None:
    """What a change may not do to this order; the body-level rules are OrderChanges'.
    A notional order takes none (Alpaca: "cancel it and submit a new one")."""
    if order.notional is not None:
        raise InvalidChangeError(
            order.id, "notional orders cannot be replaced: cancel it and submit a new one"
        )
    if changes.qty is not None and order.qty != order.qty.to_integral_value():
        raise InvalidChangeError(order.id, "qty of a fractional order cannot be changed")
    if changes.limit_price is not None and order.type not in _LIMIT_TYPES:
        raise InvalidChangeError(
            order.id, "limit_price applies only to limit and stop_limit orders"
        )
    if changes.stop_price is not None and order.type not in _STOP_TYPES:
        raise InvalidChangeError(order.id, "stop_price applies only to stop and stop_limit orders")


def replacement_request(order: Order, changes: OrderChanges) -> OrderRequest:
    """The new order: the old one's symbol, side and type; every other field the change's,
    else the old order's (its full qty, not its remainder, as Alpaca's "other attributes
    remain the same")."""
    return OrderRequest(
        symbol=order.symbol,
        qty=order.qty if changes.qty is None else changes.qty,
        side=order.side,
        type=order.type,
        time_in_force=changes.time_in_force or order.time_in_force,
        limit_price=order.limit_price if changes.limit_price is None else changes.limit_price,
        stop_price=order.stop_price if changes.stop_price is None else changes.stop_price,
        client_order_id=changes.client_order_id,
    )
