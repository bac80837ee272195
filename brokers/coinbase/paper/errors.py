"""Coinbase's error answers: ``{"error", "error_details", "message"}`` under an HTTP status,
the error named as gRPC names its codes (INVALID_ARGUMENT, NOT_FOUND ...); and its 401, a
plain-text ``Unauthorized`` (seen by Coinbase.Net and ccxt users as the body of a refused
JWT)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, Response

from brokers.paper.asgi import json_response

PLAIN_TEXT = "text/plain; charset=utf-8"


class CoinbaseError(Exception):
    """A refusal as Coinbase answers it; ``headers`` go out with it."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error} {message}")
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})


class Unauthorized(CoinbaseError):
    """A missing, malformed, unknown, expired or misdirected JWT; ``reason`` is for the
    tests and the log, never sent (Coinbase says only ``Unauthorized``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, "UNAUTHORIZED", "Unauthorized")
        self.reason = reason


async def coinbase_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoinbaseError)
    if isinstance(exc, Unauthorized):
        return Response("Unauthorized\n", 401, exc.headers, media_type=PLAIN_TEXT)
    body = {"error": exc.error, "error_details": exc.message, "message": exc.message}
    return json_response(body, exc.status, exc.headers)


def invalid(message: str) -> CoinbaseError:
    """400 INVALID_ARGUMENT: a request Coinbase cannot read."""
    return CoinbaseError(400, "INVALID_ARGUMENT", message)


# An unknown path under /api/v3/brokerage [U: the body of Coinbase's own 404 is not
# documented; this is its error shape].
NOT_FOUND = CoinbaseError(404, "NOT_FOUND", "Not Found")
ORDER_NOT_FOUND = CoinbaseError(404, "NOT_FOUND", "order with this orderID was not found")
PRODUCT_NOT_FOUND = CoinbaseError(404, "NOT_FOUND", "ProductID is invalid")
UNAVAILABLE = CoinbaseError(503, "UNAVAILABLE", "service unavailable")
# A placement that was made but whose answer timed out at the gateway.
ANSWER_LOST = CoinbaseError(504, "DEADLINE_EXCEEDED", "upstream request timeout")
