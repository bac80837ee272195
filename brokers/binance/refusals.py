"""Binance's error answers (``{"code": -NNNN, "msg": "..."}``) -> the BrokerError to raise.

Pure: the adapter hands in what it knows about the call, so every mapping is tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
)

KIND = "binance"
TIMESTAMP_OUTSIDE_WINDOW = -1021
_AUTH_CODES = frozenset({-1022, -2014, -2015})
# "Timeout waiting for response from backend server. Send status unknown"
_SEND_STATUS_UNKNOWN = -1007
_UNKNOWN_ERROR = "unknown error, please check your request or try again later"


@dataclass(frozen=True, slots=True)
class Call:
    """One request and the ids it concerns, so every error names them."""

    method: str
    path: str
    weight: int
    signed: bool = True
    placing: bool = False
    broker_order_id: str | None = None
    client_order_id: str | None = None

    @property
    def endpoint(self) -> str:
        """Method and path: a bounded metrics label (ids travel in the query)."""
        return f"{self.method} {self.path}"

    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        return cls(
            f"{self.endpoint}: {message}",
            broker=KIND,
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            status_code=status,
        )


def outcome_unknown(code: int | None, message: str) -> bool:
    """Binance's own words for 'the request may or may not have been executed'."""
    return code == _SEND_STATUS_UNKNOWN or _UNKNOWN_ERROR in message.lower()


def refusal(call: Call, status: int, code: int | None, message: str) -> BrokerError:
    """The error for a non-success answer other than 429/418 and -1021 (handled earlier)."""
    said = f"Binance {code}: {message}" if code is not None else message
    if call.placing and outcome_unknown(code, message):
        return call.error(AnswerLost, f"{said}; look it up by client order id", status)
    if code in _AUTH_CODES or status == 401:
        return call.error(AuthenticationFailed, said, status)
    if code == -2013:
        return call.error(OrderNotFound, said, status)
    if code == -2011:
        cls = OrderNotFound if message.startswith("Unknown order sent") else OrderNotCancelable
        return call.error(cls, said, status)
    if code == -2010 and message.startswith("Duplicate order sent"):
        return call.error(DuplicateClientOrderId, said, status)
    if code == -2021:  # cancelReplace: the cancel went through, the new order did not
        return call.error(OrderRejected, f"{said}; the old order was canceled", status)
    if call.placing and 400 <= status < 500:
        # -2010 (e.g. insufficient balance), -1013 filter failures, -1100..-1130 parameters.
        return call.error(OrderRejected, said, status)
    if outcome_unknown(code, message) or status >= 500:
        return call.error(BrokerUnavailable, said, status)
    return call.error(BrokerError, said, status)
