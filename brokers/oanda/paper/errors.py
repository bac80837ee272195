"""OANDA's error answers: ``{"errorMessage"}`` (with ``errorCode`` where a reason applies,
and the reject transaction for a refused order or cancel) under an HTTP status."""

from __future__ import annotations

from fastapi import Request, Response

from brokers.paper.asgi import json_response

Json = dict[str, object]


class OandaError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, extra: Json | None = None
    ) -> None:
        super().__init__(f"{status} {code or ''} {message}")
        self.status = status
        self.body: Json = {**(extra or {}), "errorMessage": message}
        if code is not None:
            self.body["errorCode"] = code


# The 401 every v20 client shows for a missing or wrong token.
UNAUTHORIZED = OandaError(401, "Insufficient authorization to perform request.")
# A token that does not open the account named in the path [U: OANDA's wording].
FORBIDDEN = OandaError(403, "The provided request was forbidden.")
RATE_LIMITED = OandaError(429, "Requests per second exceeded.")  # [U: wording]
UNAVAILABLE = OandaError(503, "Service Unavailable")  # [U: wording]
ANSWER_LOST = OandaError(504, "Gateway Timeout")  # the order was made; its answer is not
ORDER_MISSING = OandaError(404, "The order ID specified does not exist", "ORDER_DOESNT_EXIST")
TRADE_MISSING = OandaError(404, "The Trade specified does not exist", "TRADE_DOESNT_EXIST")  # [U]


def bad_request(message: str, code: str | None = None) -> OandaError:
    return OandaError(400, message, code)


async def oanda_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OandaError)
    return json_response(exc.body, exc.status)
