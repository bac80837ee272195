"""Binance's WebSocket API at ``/ws-api/v3``, the part that carries the user data stream:
``userDataStream.subscribe.signature`` (checked as SIGNED requests are), ``unsubscribe``,
``session.subscriptions``, ``ping`` and ``time``; requests and answers are JSON text
frames (web-socket-api.md), and the subscribed accounts' events follow through the stream
faults (``hub.UserDataHub``).

Every answer goes through the connection's queue, so answers and events leave in the order
they arose. Refusals keep the connection open, as Binance's do.
"""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

from fastapi import APIRouter, WebSocket
from starlette.types import Message

from brokers.binance.paper import errors as err
from brokers.binance.paper.auth import check_key, check_signed
from brokers.binance.paper.errors import BinanceError
from brokers.binance.paper.hub import ApiConnection, UserDataHub
from brokers.binance.paper.limits import limits_of
from brokers.binance.paper.venue import engine_account
from brokers.paper.state import Sim
from brokers.paper.streaming import Json, Outgoing, serve

PATH = "/ws-api/v3"
# Request weights (web-socket-api.md); what is not listed weighs 1.
WEIGHTS = {"userDataStream.subscribe.signature": 2, "userDataStream.subscribe": 2,
           "userDataStream.unsubscribe": 2, "session.subscriptions": 2}  # fmt: skip
# Not confirmed against the live API: the error of an unreadable request and of an unknown
# method (errors.md's INVALID_JSON and UNSUPPORTED_OPERATION).
INVALID_JSON = BinanceError(400, -1135, "Invalid JSON Request")
UNKNOWN_METHOD = BinanceError(400, -1020, "This operation is not supported.")
# userDataStream.subscribe needs a session logged on with an Ed25519 key (session.logon),
# which this exchange does not offer.
NOT_LOGGED_ON = BinanceError(401, -1002, "You are not authorized to execute this request.")


class Refused(Exception):
    """A request refused with Binance's error object; ``request_id`` is echoed back."""

    def __init__(self, request_id: object, error: BinanceError) -> None:
        super().__init__(str(error))
        self.request_id = request_id
        self.error = error


def payload_value(value: object) -> str:
    """A parameter as it stands in the signature payload (JSON numbers as written)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | Decimal):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def signature_payload(params: dict[str, object]) -> str:
    """Every parameter but ``signature``, sorted by name, as ``name=value`` joined by ``&``
    (web-socket-api.md, SIGNED request example)."""
    return urlencode(sorted((k, payload_value(v)) for k, v in params.items() if k != "signature"))


def decode(frame: Message) -> tuple[object, str, dict[str, object]]:
    """(id, method, params) of a request frame; requests come as JSON in text frames."""
    text = frame.get("text")
    if text is None:
        raise Refused(None, INVALID_JSON)
    try:
        body = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise Refused(None, INVALID_JSON) from None
    if not isinstance(body, dict):
        raise Refused(None, INVALID_JSON)
    request_id = body.get("id")
    if not isinstance(request_id, int | str | None) or isinstance(request_id, bool):
        raise Refused(None, err.bad_value("id"))
    method, params = body.get("method"), body.get("params", {})
    if not isinstance(method, str) or not method:
        raise Refused(request_id, err.mandatory("method"))
    if not isinstance(params, dict):
        raise Refused(request_id, err.bad_value("params"))
    return request_id, method.removeprefix("v3/"), params


class Session:
    """One WebSocket API connection from accept to close."""

    def __init__(self, sim: Sim, hub: UserDataHub, websocket: WebSocket) -> None:
        self.sim = sim
        self.hub = hub
        self.websocket = websocket
        self.conn: ApiConnection = hub.open()
        client = websocket.client
        self.ip = client.host if client else "-"

    async def run(self) -> None:
        await serve(self.hub, self.conn, self.websocket, self._receive, self._send)

    def _receive(self, frame: Message) -> None:
        try:
            request_id, method, params = decode(frame)
            self._answer(request_id, method, params)
        except Refused as refused:
            self._refuse(refused.request_id, refused.error)

    def _answer(self, request_id: object, method: str, params: dict[str, object]) -> None:
        try:
            limits = self._charge(WEIGHTS.get(method, 1))
        except BinanceError as exc:
            raise Refused(request_id, exc) from None
        if method == "userDataStream.subscribe.signature":
            result: object = self._subscribe(request_id, params)
        elif method == "userDataStream.unsubscribe":
            ended = self._unsubscribe(request_id, params)
            self.hub.send(self.conn, Outgoing(self._ok(request_id, {}, limits)))
            for sid in ended:
                message = self.hub.terminated(self.conn, sid, self._now_ms())
                self.hub.send(self.conn, Outgoing(message))
            return
        elif method == "session.subscriptions":
            result = [{"subscriptionId": sid} for sid in self.conn.subscriptions]
        elif method == "ping":
            result = {}
        elif method == "time":
            result = {"serverTime": self._now_ms()}
        elif method == "userDataStream.subscribe":
            raise Refused(request_id, NOT_LOGGED_ON)
        else:
            raise Refused(request_id, UNKNOWN_METHOD)
        self.hub.send(self.conn, Outgoing(self._ok(request_id, result, limits)))

    def _subscribe(self, request_id: object, params: dict[str, object]) -> Json:
        stats = self.hub.stats
        try:
            api_key = params.get("apiKey")
            if not isinstance(api_key, str) or not api_key:
                raise err.mandatory("apiKey")
            secret = check_key(api_key, self.sim.binance.secret_of(api_key))
            text_params = {k: payload_value(v) for k, v in params.items()}
            check_signed(text_params, signature_payload(params), "", secret, self._now_ms())
            if self.sim.faults.take_refuse_auth():
                stats.refused_auth += 1
                raise err.REJECTED_API_KEY
        except BinanceError as exc:
            stats.unauthorized += 1
            raise Refused(request_id, exc) from None
        stats.authorized += 1
        self.sim.binance.account(api_key)
        self.conn.account = self.conn.account or api_key
        return {"subscriptionId": self.conn.subscribe(engine_account(api_key))}

    def _unsubscribe(self, request_id: object, params: dict[str, object]) -> list[int]:
        """The subscriptions to end: all without ``subscriptionId``, else that one if it
        exists."""
        if "subscriptionId" not in params:
            return list(self.conn.subscriptions)
        sid = params["subscriptionId"]
        if not isinstance(sid, int) or isinstance(sid, bool):
            raise Refused(request_id, err.bad_value("subscriptionId"))
        return [sid] if sid in self.conn.subscriptions else []

    def _charge(self, weight: int) -> Json:
        """Count the request's weight against the address; the ``rateLimits`` to show."""
        limits = limits_of(self.sim.faults.settings)
        headers = self.sim.binance_limits.charge(self.ip, weight, self.sim.now_s(), limits)
        used = int(headers["X-MBX-USED-WEIGHT-1M"])
        return {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                "limit": limits.weight_per_min, "count": used}  # fmt: skip

    @staticmethod
    def _ok(request_id: object, result: object, limits: Json) -> Json:
        return {"id": request_id, "status": 200, "result": result, "rateLimits": [limits]}

    def _refuse(self, request_id: object, error: BinanceError) -> None:
        answer = {"id": request_id, "status": error.status,
                  "error": {"code": error.code, "msg": error.msg}}  # fmt: skip
        self.hub.send(self.conn, Outgoing(answer))

    def _now_ms(self) -> int:
        return int(self.sim.now_s() * 1000)

    async def _send(self, message: Json) -> None:
        await self.websocket.send_text(json.dumps(message, separators=(",", ":")))


def build_ws_api_router(sim: Sim) -> APIRouter:
    router = APIRouter()

    @router.websocket(PATH)
    async def ws_api(websocket: WebSocket) -> None:
        await websocket.accept()
        await Session(sim, sim.binance_stream, websocket).run()

    return router
