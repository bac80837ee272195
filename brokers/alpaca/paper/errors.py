"""Alpaca's error answers: ``{code, message}`` (and a refusal's extra fields), and a body
that fails validation as 422 ``40010001``."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

from brokers.alpaca.paper.schemas import ApiError, describe_errors
from brokers.paper.asgi import json_response


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response({**exc.extra, "code": exc.code, "message": exc.message}, exc.status)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_response({"code": 40010001, "message": describe_errors(exc.errors())}, 422)
