"""HTTP plumbing shared by the dialects' routers: JSON answers, the fallback errors (in
``{code, message}``, the shape of Alpaca's, which serves the root paths), extra headers."""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import Request, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Where the /v2 gate leaves the rate-limit headers for ``ExtraHeaders`` to send.
EXTRA_HEADERS = "ordersync.extra_headers"


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialize directly: the bodies are plain dicts already, no encoder pass needed."""
    content = json.dumps(body, separators=(",", ":"))
    return Response(content, status, headers, media_type="application/json")


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods keep the ``{code, message}`` shape too."""
    assert isinstance(exc, HTTPException)
    body = {"code": exc.status_code * 100_000, "message": str(exc.detail)}
    return json_response(body, exc.status_code, exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """A bug still answers in the error shape; Starlette logs the traceback."""
    return json_response({"code": 50000000, "message": "internal server error"}, 500)


class ExtraHeaders:
    """Adds headers a handler or dependency left in the scope to whatever answer goes out,
    error answers included (pure ASGI, so it costs one dict per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: dict[str, str] = {}
        scope[EXTRA_HEADERS] = extra

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                added = [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
