"""Binance's error answers: ``{"code": -NNNN, "msg": "..."}`` with its HTTP status, and the
exact messages of errors.md for the refusals this venue makes."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, Response

from brokers.paper.asgi import json_response


class BinanceError(Exception):
    """A refusal as Binance answers it; ``headers`` go out with it (Retry-After)."""

    def __init__(
        self, status: int, code: int, msg: str, headers: Mapping[str, str] | None = None,
        data: dict[str, object] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})
        self.data = data  # what a cancel-replace that failed did of each half


async def binance_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BinanceError)
    body: dict[str, object] = {"code": exc.code, "msg": exc.msg}
    if exc.data is not None:
        body["data"] = exc.data
    return json_response(body, exc.status, exc.headers)


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        400,
        -1102,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def bad_value(name: str) -> BinanceError:
    """-1100: a value Binance cannot read as the parameter's type."""
    return BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {name}")


def rejected(msg: str) -> BinanceError:
    return BinanceError(400, -2010, msg)


BAD_API_KEY_FORMAT = BinanceError(401, -2014, "API-key format invalid.")
REJECTED_API_KEY = BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_SIGNATURE = BinanceError(400, -1022, "Signature for this request is not valid.")
OUTSIDE_RECV_WINDOW = BinanceError(
    400, -1021, "Timestamp for this request is outside of the recvWindow."
)
AHEAD_OF_SERVER = BinanceError(
    400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
)
BAD_RECV_WINDOW = BinanceError(400, -1131, "recvWindow must be less than 60000")
BAD_SYMBOL = BinanceError(400, -1121, "Invalid symbol.")
BAD_SIDE = BinanceError(400, -1117, "Invalid side.")
BAD_ORDER_TYPE = BinanceError(400, -1116, "Invalid orderType.")
BAD_TIF = BinanceError(400, -1115, "Invalid timeInForce.")
BAD_RESP_TYPE = BinanceError(400, -1136, "Invalid newOrderRespType.")
BAD_CLIENT_ID = BinanceError(
    400,
    -1100,
    "Illegal characters found in parameter 'newClientOrderId'; legal range is "
    "'^[a-zA-Z0-9-_]{1,36}$'.",
)
BAD_LIMIT = BinanceError(400, -1100, "Illegal characters found in parameter 'limit'.")
INTERVAL_TOO_BIG = BinanceError(400, -1127, "More than 24 hours between startTime and endTime.")
BAD_COMBINATION = BinanceError(400, -1128, "Combination of optional parameters invalid.")
UNSUPPORTED = BinanceError(400, -1014, "Unsupported order combination.")
DUPLICATE_ORDER = rejected("Duplicate order sent.")
INSUFFICIENT_BALANCE = rejected("Account has insufficient balance for requested action.")
WOULD_TAKE = rejected("Order would immediately match and take.")
UNKNOWN_ORDER = BinanceError(400, -2011, "Unknown order sent.")
NO_SUCH_ORDER = BinanceError(400, -2013, "Order does not exist.")
OVERLOADED = BinanceError(
    503,
    -1008,
    "Server is currently overloaded with other requests. Please try again in a few minutes.",
)
ANSWER_LOST = BinanceError(
    503,
    -1007,
    "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
)


def cancel_replace_failed(cancel_answer: dict[str, object]) -> BinanceError:
    """STOP_ON_FAILURE and the cancel failed: nothing was placed."""
    data: dict[str, object] = {
        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": cancel_answer, "newOrderResponse": None,
    }  # fmt: skip
    return BinanceError(400, -2022, "Order cancel-replace failed.", data=data)


def cancel_replace_partly(
    canceled: bool, cancel_answer: dict[str, object], new_answer: dict[str, object]
) -> BinanceError:
    """One half done, the other not: the cancel and a refused new order, or (ALLOW_FAILURE)
    a failed cancel and the new order."""
    data: dict[str, object] = {
        "cancelResult": "SUCCESS" if canceled else "FAILURE",
        "newOrderResult": "FAILURE" if canceled else "SUCCESS",
        "cancelResponse": cancel_answer, "newOrderResponse": new_answer,
    }  # fmt: skip
    return BinanceError(409, -2021, "Order cancel-replace partially failed.", data=data)
