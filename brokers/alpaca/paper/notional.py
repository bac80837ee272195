"""Notional and fractional orders as Alpaca takes them (the engine fills them:
``brokers.paper.notional``). What Alpaca does, and where it was seen:

- ``notional`` (dollars) instead of ``qty``, never both; up to 9 decimals for either
  (support "How can I pass a fractional order"). The order shows ``"notional": "500"`` and
  ``"qty": null``; the fills decide the quantity (``filled_qty``).
- Fractional and notional equity orders are simple ``market`` orders, ``day`` (the
  POST /v2/orders reference: "Can only work for market order types and time_in_force =
  day"); crypto notional orders are ``market``, ``gtc`` or ``ioc`` (crypto's own rules).
- The asset must be fractionable: 422 ``requested asset is not fractionable`` (support
  "How do I know if an asset is fractionable"); an equity notional is at least $1
  (support "What is fractional trading": "as little as $1"; 422 42210000 ``notional amount
  must be >= 1.00`` as users report it); crypto's $10 floor is crypto's.
- Fractional shares are long only: a fractional or notional sell beyond the shares held
  (less what open sells hold) is 422 ``fractional orders are not allowed to short``
  (alpaca-trade-api-python issue 405).
- A notional order is never replaced (Broker API OpenAPI, PATCH: "Notional orders for
  non-IPO asset classes cannot be replaced ... cancel it and submit a new one").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from brokers.alpaca.paper.assets import asset_for
from brokers.alpaca.paper.crypto import pair_of
from brokers.paper.model import QTY_QUANTUM, OrderRequest, Refusal
from brokers.paper.notional import shares
from core.enums import Side

if TYPE_CHECKING:
    from brokers.paper.accounts import Account

MIN_EQUITY_NOTIONAL = Decimal(1)
PriceOf = Callable[[str], Decimal]


class FractionalRefusal(Refusal):
    """What Alpaca answers instead of taking a fractional or notional equity order."""


def is_fractional(request: OrderRequest) -> bool:
    return request.notional is not None or request.qty != request.qty.to_integral_value()


def shape_problem(*, crypto: bool, notional: bool, type: str, time_in_force: str) -> str | None:
    """Why Alpaca refuses a fractional (or notional) order's type or time in force."""
    if notional and type != "market":
        return "notional orders must be market orders"
    if crypto:
        return None  # crypto's own rules decide its time in force
    if type != "market":
        return "fractional orders must be market orders"
    if time_in_force != "day":
        return "fractional orders must be day orders"
    return None


def admit(request: OrderRequest, owner: Account, price_of: PriceOf) -> OrderRequest:
    """The request with a notional order's ``qty`` sized at the price now, if Alpaca takes
    it; else ``FractionalRefusal`` (an equity that is not fractionable, a notional under
    $1, a short)."""
    if not is_fractional(request):
        return request
    pair = pair_of(request.symbol)
    symbol = pair or request.symbol
    if request.notional is not None:
        sized = max(QTY_QUANTUM, shares(request.notional, price_of(symbol)))
        request = replace(request, qty=sized)
    if pair is not None:
        return request  # crypto: every pair is fractionable, and it has its own floor
    asset = asset_for(symbol)
    if asset is not None and not asset.fractionable:
        raise FractionalRefusal(422, 42210000, "requested asset is not fractionable")
    if request.notional is not None and request.notional < MIN_EQUITY_NOTIONAL:
        raise FractionalRefusal(422, 42210000, "notional amount must be >= 1.00")
    if request.side is Side.SELL and request.qty > _sellable(owner, symbol):
        raise FractionalRefusal(422, 42210000, "fractional orders are not allowed to short")
    return request


def _sellable(owner: Account, symbol: str) -> Decimal:
    """The long position less what open sells of it hold."""
    held = sum(
        (o.leaves_qty for o in owner.open.values() if o.symbol == symbol and o.side is Side.SELL),
        Decimal(0),
    )
    return owner.long_qty(symbol) - held
