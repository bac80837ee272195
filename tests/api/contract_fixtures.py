"""What the OpenAPI contract test (``test_openapi_contract``) runs against: the app of the
``api`` fixture seen through schemathesis, and a few real rows for path parameters to name.

Schemathesis reaches an ASGI app in process, but starts the app's lifespan itself, once per
app object and until the interpreter exits; the ``api`` fixture's client already runs it
(and closes it, database included, at teardown). :func:`served` hands schemathesis the same
app without a lifespan, and turns an exception that escapes after the 500 was sent (Starlette
re-raises it, as a server would log it) into just that 500, kept for the failure report.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import schemathesis
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.enums import OrderStatus
from models.outbox import EventKind, add_event
from tests.api.conftest import T0, ApiWorld

OPENAPI = "/openapi.json"
SSE_PATH = r"/events/stream$"  # never ends: not fuzzed (see test_openapi_contract)


@dataclass
class Served:
    """The app as schemathesis calls it, and what escaped it during the current case."""

    app: ASGIApp
    escaped: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # the fixture's client runs the app's lifespan; "not supported" here
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if not started:
                raise
            # The app's error handler logged the traceback; the report names the exception.
            self.escaped.append(traceback.format_exc().strip().splitlines()[-1])


def served(api: ApiWorld) -> tuple[Any, Served]:
    """The app's OpenAPI document loaded by schemathesis, calling the app in process."""
    app = Served(api.client.app)
    document = api.client.get(OPENAPI).json()
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    schema.app = app
    return schema, app


@dataclass(frozen=True)
class Seeded:
    """Rows the fuzzed path parameters name: alpha's open and filled orders, beta's order."""

    order_ids: tuple[str, ...]
    client_order_ids: tuple[str, ...]
    broker_order_ids: tuple[str, ...]


def seed(api: ApiWorld) -> Seeded:
    open_id = api.add_order("alpha", "a-open", broker_order_id="b-a-open")
    filled_id = api.add_order("alpha", "a-filled", status=OrderStatus.FILLED, filled="10",
                              broker_order_id="b-a-filled")  # fmt: skip
    other_id = api.add_order("beta", "b-open", broker_order_id="b-b-open")
    with Session(api.engine) as session:
        for n, order_id in enumerate((open_id, filled_id, other_id)):
            add_event(session, EventKind.ORDER_ACCEPTED, {"n": n, "price": "187.25"},
                      now=T0 + timedelta(seconds=n), order_id=order_id)  # fmt: skip
        session.commit()
    return Seeded(
        order_ids=(open_id, filled_id, other_id),
        client_order_ids=("a-open", "a-filled", "b-open"),
        broker_order_ids=("b-a-open", "b-a-filled", "b-b-open"),
    )
