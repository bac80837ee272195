"""Submitting to a broker so that there is one order there, never two.

Every outcome of a submit is one of four things, decided here and acted on by the caller:
the broker's report, a refusal (the order never existed), a deferral (the broker would not
take the request; it was not processed, so trying again is safe), or unknown (the request
may have reached the broker; the order is looked up by client order id, never resent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from brokers.base import BrokerAdapter, OrderReport, PlaceOrderRequest
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

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reported:
    report: OrderReport


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


@dataclass(frozen=True, slots=True)
class Deferred:
    reason: str


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


Outcome = Reported | Refused | Deferred | Unknown


def look_up(adapter: BrokerAdapter, client_order_id: str) -> Reported | Unknown | None:
    """The broker's report for a client order id, None if it has none, Unknown if it can't say."""
    try:
        return Reported(adapter.get_order_by_client_id(client_order_id))
    except OrderNotFound:
        return None
    except BrokerError as error:
        return Unknown(f"lookup by client order id failed: {error}")


def submit(adapter: BrokerAdapter, request: PlaceOrderRequest, *, look_first: bool) -> Outcome:
    """Submit once; after a lost or unclear answer, look the order up instead of resending.

    ``look_first`` is for a retry of a placement that may already have reached the broker.
    """
    if look_first:
        found = look_up(adapter, request.client_order_id)
        if found is not None:
            return found
    try:
        return Reported(adapter.place(request))
    except DuplicateClientOrderId:
        return look_up(adapter, request.client_order_id) or Unknown(
            "broker reports the client order id as taken but cannot find it yet"
        )
    except (AnswerLost, MalformedResponse) as error:
        logger.warning("placement answer unclear for %s: %s", request.client_order_id, error)
        return look_up(adapter, request.client_order_id) or Unknown(
            f"answer lost and not found by client order id yet: {error}"
        )
    except (OrderRejected, AuthenticationFailed) as error:
        return Refused(str(error))
    except (RateLimited, BrokerUnavailable) as error:
        return Deferred(str(error))
