"""Tradier's answers: orders, positions and balances as its JSON (numbers, not strings;
a list of one as the object itself, none as ``"null"``) or as its default XML, which
Tradier answers when ``Accept`` does not ask for JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from fastapi import Response

from brokers.paper.ledger import Position
from brokers.paper.model import Order, PaperStatus
from brokers.tradier.paper.venue import TradierOrder
from core.instruments import contract_multiplier

Json = dict[str, object]
ZERO = Decimal(0)
_PENDING = frozenset(
    {PaperStatus.ACCEPTED, PaperStatus.PENDING_NEW, PaperStatus.PENDING_REVIEW}
)  # fmt: skip
_ENDED = {
    PaperStatus.FILLED: "filled",
    PaperStatus.CALCULATED: "filled",
    PaperStatus.CANCELED: "canceled",
    PaperStatus.EXPIRED: "expired",
    PaperStatus.REJECTED: "rejected",
}


def status_of(order: Order) -> str:
    """The engine's lifecycle in Tradier's words."""
    if order.status in _ENDED:
        return _ENDED[order.status]
    if order.status in _PENDING:
        return "pending"
    return "partially_filled" if order.filled_qty > 0 else "open"


def tradier_time(at_us: int) -> str:
    """``2018-06-01T12:02:29.682Z``: milliseconds, UTC."""
    at = datetime.fromtimestamp(at_us / 1_000_000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def one_or_many(items: list[Json], outer: str, inner: str) -> Json:
    """Tradier's list quirk: ``"null"`` for none, the object for one, a list for more."""
    if not items:
        return {outer: "null"}
    return {outer: {inner: items[0] if len(items) == 1 else items}}


def order_json(placed: TradierOrder, *, include_tag: bool) -> Json:
    order = placed.order
    last = order.fills[-1] if order.fills else None
    avg = order.filled_notional / order.filled_qty if order.filled_qty else ZERO
    body: Json = {
        "id": placed.id,
        "type": order.type.value,
        "symbol": order.symbol if placed.underlying is None else placed.underlying,
        "side": placed.side,
        "quantity": order.qty,
        "status": status_of(order),
        "duration": placed.duration,
    }
    if order.limit_price is not None:
        body["price"] = order.limit_price
    if order.stop_price is not None:
        body["stop_price"] = order.stop_price
    body.update(
        {
            "avg_fill_price": avg,
            "exec_quantity": order.filled_qty,
            "last_fill_price": last.price if last else ZERO,
            "last_fill_quantity": last.qty if last else ZERO,
            "remaining_quantity": order.qty - order.filled_qty if order.is_open else ZERO,
            "create_date": tradier_time(order.created_us),
            "transaction_date": tradier_time(max(order.updated_us, order.created_us)),
            "class": "equity" if placed.underlying is None else "option",
        }
    )
    if placed.underlying is not None:
        body["option_symbol"] = order.symbol
    if include_tag and placed.tag is not None:
        body["tag"] = placed.tag
    return body


def event_json(placed: TradierOrder) -> Json:
    """The order as the account events stream writes it (account-streaming-responses docs):
    no symbol, side, quantity or duration; 0.0 for a price or stop it has not, as the docs'
    sample writes ``stop_price`` [U for market orders' ``price``]; ``tag`` when it has one."""
    order = placed.order
    body = order_json(placed, include_tag=True)
    event: Json = {
        "id": placed.id,
        "event": "order",
        "status": body["status"],
        "type": body["type"],
        "price": order.limit_price if order.limit_price is not None else ZERO,
        "stop_price": order.stop_price if order.stop_price is not None else ZERO,
        **{k: body[k] for k in ("avg_fill_price", "exec_quantity", "last_fill_quantity",
                                "remaining_quantity", "transaction_date", "create_date")},
        "account": placed.account_number,
    }  # fmt: skip
    if placed.tag is not None:
        event["tag"] = placed.tag
    return event


def event_text(message: Json) -> str:
    """One stream frame: Tradier's JSON, Decimals as numbers."""
    return _json(message)


def position_json(symbol: str, position: Position, opened_us: int, position_id: int) -> Json:
    return {
        "cost_basis": position.qty * position.avg_price * contract_multiplier(symbol),
        "date_acquired": tradier_time(opened_us),
        "id": position_id,
        "quantity": position.qty,
        "symbol": symbol,
    }


def truth_json(placed: TradierOrder) -> Json:
    """What ``/_sim/truth`` adds to an engine order placed through /v1/accounts (its
    numbers as decimal strings, as the rest of the truth)."""
    view = order_json(placed, include_tag=True)
    strings = {k: f"{v:f}" if isinstance(v, Decimal) else v for k, v in view.items()}
    return {"tradier": {**strings, "account_number": placed.account_number}}


# -- encodings ----------------------------------------------------------------------------


def _number(value: Decimal) -> str:
    """A Decimal as a JSON number, never through float."""
    text = f"{value.normalize():f}" if value else "0"
    return text if "." in text else text + ".0"


def _json(value: object) -> str:
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, Mapping):
        inner = ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)


def _xml(name: str, value: object) -> str:
    if isinstance(value, list):
        return "".join(_xml(name, item) for item in value)
    if isinstance(value, Mapping):
        inner = "".join(_xml(str(k), v) for k, v in value.items())
    elif isinstance(value, Decimal):
        inner = _number(value)
    elif isinstance(value, bool):
        inner = str(value).lower()
    elif value == "null":
        return f"<{name}>null</{name}>"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def wants_json(accept: str | None) -> bool:
    return "application/json" in (accept or "").lower()


def answer(
    body: Json, accept: str | None, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON when asked for, else XML (Tradier's default): one root element per body key."""
    if wants_json(accept):
        return Response(_json(body), status, headers, media_type="application/json")
    xml = '<?xml version="1.0" encoding="UTF-8"?>' + "".join(_xml(k, v) for k, v in body.items())
    return Response(xml, status, headers, media_type="application/xml")
