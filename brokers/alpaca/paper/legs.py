"""Alpaca's checks on an order of a class (bracket, OTO, OCO) against the market and the
position, at placement: 422 42210000 with Alpaca's messages. The body's shape is
``brokers.alpaca.paper.schemas``'; the engine runs the legs (``brokers.paper.legs``).
"""

from __future__ import annotations

from decimal import Decimal

from brokers.paper.model import CENT, OrderRequest, StopLoss, TakeProfit
from core.enums import Side


class OrderClassError(Exception):
    """Alpaca refuses the order (422, 42210000): a rule that depends on the market or the
    account; ``base_price`` when the rule compares a leg's price with it."""

    def __init__(self, message: str, base_price: Decimal | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.base_price = base_price


def check(request: OrderRequest, long_qty: Decimal, market_price: Decimal) -> None:
    """The rules Alpaca checks against the market and the position. ``base_price`` is the
    entry's limit price, or the market price for a market entry (Alpaca: the ask for a buy,
    the bid for a sell)."""
    kind = request.order_class
    if kind == "simple":
        return
    buy = request.side is Side.BUY
    take_profit, stop_loss = request.take_profit, request.stop_loss
    if kind == "oco":
        if long_qty == 0 or (long_qty > 0) == buy:
            raise OrderClassError("oco orders must be exit orders")
        assert take_profit is not None
        assert stop_loss is not None
        if buy and not take_profit.limit_price < stop_loss.stop_price:
            raise OrderClassError("take_profit.limit_price must be < stop_loss.stop_price")
        if not buy and not take_profit.limit_price > stop_loss.stop_price:
            raise OrderClassError("take_profit.limit_price must be > stop_loss.stop_price")
        return
    if (buy and long_qty < 0) or (not buy and long_qty > 0):
        raise OrderClassError(f"{kind} orders must be entry orders")
    base = market_price if request.limit_price is None else request.limit_price
    _check_exits(buy, base, take_profit, stop_loss)


def _check_exits(
    buy: bool, base: Decimal, take_profit: TakeProfit | None, stop_loss: StopLoss | None
) -> None:
    """A buy's take-profit above its base price and stop-loss below it; a sell's reversed."""
    above, below = ">= base_price + 0.01", "<= base_price - 0.01"
    if take_profit is not None:
        limit = take_profit.limit_price
        if not (limit >= base + CENT if buy else limit <= base - CENT):
            rule = above if buy else below
            raise OrderClassError(f"take_profit.limit_price must be {rule}", base)
    if stop_loss is not None:
        stop = stop_loss.stop_price
        if not (stop <= base - CENT if buy else stop >= base + CENT):
            rule = below if buy else above
            raise OrderClassError(f"stop_loss.stop_price must be {rule}", base)
