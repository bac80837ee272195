"""What a broker call can fail with. Each carries the ids involved so an operator can act.

Callers must tell these apart:
- ``OrderNotFound``: the broker does not know the order (a miss, not proof of loss).
- ``OrderRejected``: the broker refused the request (bad order, not retriable as is);
  ``DuplicateClientOrderId`` is the case where the client order id is already taken.
- ``OrderNotCancelable``: the order can no longer be canceled (usually already terminal).
- ``RateLimited``: the budget is spent; ``retry_at`` says when it resets.
- ``BrokerUnavailable``: transport errors or 5xx after retries; nothing was changed.
- ``AnswerLost``: a placement may or may not have reached the broker; look it up by
  client order id before anything else.
- ``AuthenticationFailed``: the credentials were refused.
- ``MalformedResponse``: the broker answered with something we cannot read.
"""

from __future__ import annotations

from datetime import datetime


class BrokerError(Exception):
    """Base of every adapter failure."""

    def __init__(
        self,
        message: str,
        *,
        broker: str = "",
        broker_order_id: str | None = None,
        client_order_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.message = message
        self.broker = broker
        self.broker_order_id = broker_order_id
        self.client_order_id = client_order_id
        self.status_code = status_code
        super().__init__(self._render())

    def _render(self) -> str:
        ids = [
            f"{name}={value}"
            for name, value in (
                ("broker", self.broker),
                ("broker_order_id", self.broker_order_id),
                ("client_order_id", self.client_order_id),
                ("http_status", self.status_code),
            )
            if value
        ]
        return f"{self.message} ({', '.join(ids)})" if ids else self.message


class OrderNotFound(BrokerError):
    pass


class OrderRejected(BrokerError):
    pass


class DuplicateClientOrderId(OrderRejected):
    pass


class OrderNotCancelable(BrokerError):
    pass


class RateLimited(BrokerError):
    def __init__(self, message: str, *, retry_at: datetime | None = None, **ids: object) -> None:
        self.retry_at = retry_at
        super().__init__(message, **ids)  # type: ignore[arg-type]


class BrokerUnavailable(BrokerError):
    pass


class AnswerLost(BrokerError):
    pass


class AuthenticationFailed(BrokerError):
    pass


class MalformedResponse(BrokerError):
    pass
