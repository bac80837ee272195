"""The FastAPI app: the JSON API under ``/api/v1``, health, metrics and the dashboard.

Every error is JSON ``{"detail": ..., "errors": [...]}`` saying what is wrong; nothing is
written for a refused request. Bodies are JSON only and bounded in size. Each operation
documents the error statuses it can answer (``tests/api/test_openapi_contract.py`` holds
the API to its document).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ApiState, Lazy
from api.routes import activity, admin, dashboard, orders, system
from api.schemas import ErrorOut
from brokers.registry import CredentialsMissing
from ordersync.redis_url import resolve_redis_url
from ordersync.settings import Settings, get_settings
from ordersync.status import StatusReader
from worker.context import build_context

logger = logging.getLogger(__name__)
DASHBOARD = Path(__file__).parent / "dashboard"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ADMIN_PREFIX = "/api/v1/admin/"
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in [
        (400, "Bad request: a NUL character in the URL, a key sent in the URL, a body that "
              "is not UTF-8"),
        (401, "Missing or invalid key"), (403, "Needs the admin key"),
        (404, "Not found in the accounts this key reaches"), (409, "Conflicts with the state"),
        (413, "Body too large"), (415, "Body is not JSON"), (422, "Invalid input"),
        (429, "Too many failed authentications"), (502, "The broker could not be asked"),
        (503, "Authentication is unavailable: Redis does not answer"),
    ]
}  # fmt: skip
ERRORS[401]["headers"] = {"WWW-Authenticate": {"description": "`Bearer`",
                                               "schema": {"type": "string"}}}  # fmt: skip
ERRORS[429]["headers"] = RETRY_AFTER
# What a handler answers itself, beyond what its key, account, parameters and body imply
# (see _document_errors). An operation may declare its own responses instead.
HANDLER_ERRORS: dict[tuple[str, str], frozenset[int]] = {
    ("post", "/api/v1/accounts/{account}/orders"): frozenset({409}),  # account disabled
    ("post", "/api/v1/accounts/{account}/orders/{order_id}/cancel"): frozenset({409}),
    ("post", "/api/v1/accounts/{account}/orders/{order_id}/replace"): frozenset({409}),
    ("post", "/api/v1/accounts/{account}/orders/{order_id}/sync"): frozenset({409, 502}),
    ("get", "/api/v1/admin/accounts/{account}/broker-orders"): frozenset({502}),
}


def default_state(settings: Settings) -> ApiState:
    from worker.celery_app import app as celery  # configures Celery from the settings

    ctx = build_context(settings)
    reader = Lazy(lambda: StatusReader(resolve_redis_url(settings), settings))

    def close() -> None:
        ctx.close()
        if reader.built is not None:
            reader.built.close()

    return ApiState(settings, ctx, celery.send_task, close, reader)


def create_app(
    settings: Settings | None = None,
    state: Callable[[Settings], ApiState] = default_state,
) -> FastAPI:
    """The app; ``state`` builds its resources at startup (tests pass their own)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api = state(settings)
        try:
            yield
        finally:
            app.state.api.shutdown()

    app = FastAPI(
        title="ordersync",
        version="1",
        summary="The record of every order, kept true against the broker.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.add_middleware(BodyGuard, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(UrlGuard)
    app.add_middleware(SecurityHeaders)
    for router in (system.router, orders.router, activity.router, admin.router, dashboard.router):
        app.include_router(router)
    if DASHBOARD.is_dir():
        app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    _error_handlers(app)
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Each operation documents the errors it can answer, not every one the API has: the
    app's ``responses`` put every error on every operation, and this keeps an operation's
    own responses and those that follow from what it takes (see ``_errors_of``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for path, methods in document.get("paths", {}).items():
                for method, operation in methods.items():
                    keep = _errors_of(path, method, operation)
                    responses = operation.get("responses", {})
                    for code in [c for c in responses if _generic(c, responses[c])]:
                        if int(code) not in keep:
                            del responses[code]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _generic(code: str, response: dict[str, Any]) -> bool:
    """One of ``ERRORS`` as the app put it (an operation's own has its own description)."""
    return code.isdigit() and response.get("description") == ERRORS.get(int(code), {}).get(
        "description"
    )


def _errors_of(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    codes = {400}  # a NUL character in the URL, anywhere (UrlGuard)
    if operation.get("security"):
        codes |= {401, 429, 503}
        if path.startswith(ADMIN_PREFIX):
            codes.add(403)
        if "{account}" in path:
            codes.add(404)
    if operation.get("parameters") or "requestBody" in operation:
        codes.add(422)
    if "requestBody" in operation:
        codes |= {413, 415}
    return codes | HANDLER_ERRORS.get((method, path), frozenset())


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)  # FastAPI's, and routing's 404 and 405
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(error.detail)}, error.status_code, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in error.errors()]
        text = "; ".join(f"{p['where']}: {p['message']}" if p["where"] else p["message"]
                         for p in problems)  # fmt: skip
        return JSONResponse({"detail": text or "invalid input", "errors": problems}, 422)

    @app.exception_handler(CredentialsMissing)
    async def no_credentials(request: Request, error: CredentialsMissing) -> JSONResponse:
        # The variables' names stay in the log: they describe this server's environment.
        logger.error("API: %s %s: %s", request.method, request.url.path, error)
        detail = (f"the broker could not be asked: this server has no broker credentials for "
                  f"account {error.account!r} (see its log)")  # fmt: skip
        return JSONResponse({"detail": detail}, 502)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        logger.exception("API: %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(error).__name__}); logged"}, 500)


def _problem(error: Any) -> dict[str, Any]:
    """One validation problem without the input it refused (it could be anything)."""
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return {"where": where, "message": message, "type": error.get("type", "")}


# The dashboard's pages: its own scripts and styles only, no framing, no referrer.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


# The API reference (/docs, /redoc) loads its viewer from a CDN: it runs sandboxed, in an
# origin of its own, so no script of it can read the dashboard's key in this origin's
# storage; the description it shows is public (CORS allows any origin to read it).
REFERENCE_HEADERS = [(b"content-security-policy", b"sandbox allow-scripts allow-popups")]
PUBLIC_HEADERS = [(b"access-control-allow-origin", b"*")]
REFERENCE_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every answer under ``/dashboard``, the sandbox to the
    API reference, and CORS to ``/openapi.json``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if path.startswith("/dashboard"):
            extra = SECURITY_HEADERS
        elif path in REFERENCE_PATHS:
            extra = REFERENCE_HEADERS
        elif path == "/openapi.json":
            extra = PUBLIC_HEADERS
        else:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class UrlGuard:
    """Refuse (400) a URL with a NUL character in its path or query: no name or id has one,
    and PostgreSQL cannot even compare a string holding one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
                await _refuse(send, 400, "the URL contains a NUL character (%00)")
                return
        await self.app(scope, receive, send)


class BodyGuard:
    """Refuse, before the handler reads anything, bodies that are not JSON (415) or larger
    than ``max_bytes`` (413), whether declared by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        has_body = (length not in (None, "0")) or "transfer-encoding" in headers
        if has_body and headers.get("content-type", "").split(";")[0].strip().lower() != (
            "application/json"
        ):
            await _refuse(send, 415, "send the body as JSON (Content-Type: application/json)")
            return
        if length is not None and not length.isdigit():
            await _refuse(send, 400, "Content-Length is not a number")
            return
        if length is not None and int(length) > self.max_bytes:
            await _refuse(send, 413, f"body larger than {self.max_bytes} bytes")
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, bounded, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}, status).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": bytes(body)})
