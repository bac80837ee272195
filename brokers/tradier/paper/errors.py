"""Tradier's refusals: plain text (bad token, limits, gateway errors) or
``{"errors": {"error": [...]}}`` (bad requests), each in the format asked for."""

from __future__ import annotations

from fastapi import Request, Response

from brokers.tradier.paper.wire import answer


class TradierError(Exception):
    """A refusal: ``text`` goes out as a plain body, else ``messages`` as Tradier's errors."""

    def __init__(self, status: int, *, text: str | None = None, messages: tuple[str, ...] = ()):
        super().__init__(f"HTTP {status}: {text or '; '.join(messages)}")
        self.status = status
        self.text = text
        self.messages = messages


def invalid(*messages: str) -> TradierError:
    return TradierError(400, messages=messages)


INVALID_TOKEN = TradierError(401, text="Invalid Access Token")
RATE_LIMITED = TradierError(429, text="Rate limit exceeded")  # [U] Tradier's 429 body
UNAVAILABLE = TradierError(503, text="Service Unavailable")
# A placement that was made but whose answer timed out at the gateway.
ANSWER_LOST = TradierError(504, text="Gateway Timeout")


def account_refused(account_number: str) -> TradierError:
    """[U] Tradier's answer for an account number the token does not own."""
    return TradierError(401, text=f"Unauthorized Account: {account_number}")


async def tradier_error_handler(request: Request, exc: Exception) -> Response:
    """The rate-limit headers are added on the way out (``ExtraHeaders``)."""
    assert isinstance(exc, TradierError)
    if exc.text is not None:
        return Response(exc.text, exc.status, media_type="text/plain")
    errors: dict[str, object] = {"errors": {"error": list(exc.messages)}}
    return answer(errors, request.headers.get("accept"), exc.status)
