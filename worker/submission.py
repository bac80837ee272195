"""Submitting to a broker so that there is one order there, never two.

Every submission of an order carries the same client order id, which the broker refuses to
duplicate, so sending again is always safe; what a send cannot tell is settled by a lookup.
Each outcome is one of four things, decided here and acted on by the caller: the broker's
report, a refusal (the order never existed), not sent (the request provably never reached
the broker: 429, an empty budget, unreachable, its deadline), or unclear (it may have
reached the broker and no lookup could say: send again, or look again, later). A lookup
that did not reach the broker proves nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from brokers.base import BrokerAdapter
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.reports import OrderReport, PlaceOrderRequest, ReplaceOrderRequest
from worker.budget import DeadlinePassed

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reported:
    report: OrderReport


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


@dataclass(frozen=True, slots=True)
class NotSent:
    reason: str
    deadline_passed: bool = False  # the send-by time of the block came first


@dataclass(frozen=True, slots=True)
class Unclear:
    reason: str
    exists: bool = False  # the broker said the client order id is taken: the order exists


Outcome = Reported | Refused | NotSent | Unclear


def replacement_of(request: PlaceOrderRequest) -> ReplaceOrderRequest:
    """The replacing order's terms, as a replace request carries them."""
    if request.quantity is None:  # notional orders are never replaced (worker/replacing.py)
        raise ValueError(f"order {request.client_order_id!r}: a replacement names a quantity")
    return ReplaceOrderRequest(
        client_order_id=request.client_order_id, quantity=request.quantity,
        time_in_force=request.time_in_force, limit_price=request.limit_price,
        stop_price=request.stop_price,
    )  # fmt: skip


def look_up(adapter: BrokerAdapter, client_order_id: str, symbol: str) -> Reported | Unclear | None:
    """The broker's report for a client order id, None if it answered that it has none,
    Unclear if it could not say (a 429, an empty budget or a timeout proves nothing)."""
    try:
        return Reported(adapter.get_order_by_client_id(client_order_id, symbol=symbol))
    except OrderNotFound:
        return None
    except BrokerError as error:
        return Unclear(f"lookup by client order id failed: {error}")


def submit(adapter: BrokerAdapter, request: PlaceOrderRequest,
           replaces: str | None = None) -> Outcome:  # fmt: skip
    """Send once; a duplicate or an unclear answer is settled by a lookup, never by a guess.

    ``replaces``: the broker id of a working order the request replaces (a replacement is
    a new order with its own client order id, settled exactly as a placement is)."""
    try:
        if replaces is not None:
            return Reported(adapter.replace(replaces, replacement_of(request)))
        return Reported(adapter.place(request))
    except DuplicateClientOrderId:  # an earlier send got there: the order exists
        found = look_up(adapter, request.client_order_id, request.symbol)
        if isinstance(found, Reported):
            return found
        reason = found.reason if found is not None else "cannot show it yet"
        return Unclear(f"the broker reports the client order id as taken; {reason}", True)
    except (AnswerLost, MalformedResponse) as error:
        logger.warning("placement answer unclear for %s: %s", request.client_order_id, error)
        return look_up(adapter, request.client_order_id, request.symbol) or Unclear(
            f"answer lost and not found by client order id yet: {error}"
        )
    except (OrderRejected, AuthenticationFailed) as error:
        return Refused(str(error))
    except DeadlinePassed as error:
        return NotSent(str(error), deadline_passed=True)
    except (RateLimited, BrokerUnavailable) as error:
        return NotSent(str(error))
