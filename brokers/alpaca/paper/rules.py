"""Alpaca's venue rules over the engine: fractional and notional orders, crypto pairs (their
terms, balances and CFEE fees), the order-class checks and PATCH's replace rules.

Every symbol the engine trades that no dialect lists is Alpaca's, so these are the engine's
default rules in the paper exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from brokers.alpaca.paper import crypto, legs, notional
from brokers.alpaca.paper.crypto import CryptoSettings
from brokers.alpaca.paper.replace import check_changes, check_replaceable, replacement_request
from brokers.paper.accounts import Account
from brokers.paper.ledger import Ledger
from brokers.paper.model import Fee, Fill, Order, OrderChanges, OrderRequest
from brokers.paper.rules import FillDraft, Market, PriceOf


class AlpacaRules:
    """``settings`` is read at each use, so a fault change applies to the next order or fill."""

    def __init__(self, settings: Callable[[], CryptoSettings] = CryptoSettings) -> None:
        self.settings = settings

    def admit(
        self, request: OrderRequest, owner: Account, price_of: PriceOf, *, check_funds: bool
    ) -> OrderRequest:
        """Fractional and notional rules, then crypto's, then the order class's."""
        request = notional.admit(request, owner, price_of)
        if crypto.is_pair(request.symbol):
            request = crypto.admit(
                request,
                owner,
                price_of,
                min_notional=self.settings().crypto_min_notional,
                check_funds=check_funds,
            )
        legs.check(request, owner.long_qty(request.symbol), price_of(request.symbol))
        return request

    def is_crypto(self, symbol: str) -> bool:
        return crypto.is_pair(symbol)

    def reserves(self, symbol: str) -> bool:
        """A coin pair pays in a coin, not in buying power: ``crypto.held`` counts it."""
        return not crypto.is_pair(symbol) or crypto.spends_usd(symbol)

    def book_symbol(self, symbol: str) -> str:
        return crypto.pair_of(symbol) or symbol

    def position_of(self, order: Order) -> str:
        return crypto.held_in(order.symbol) if order.crypto else order.symbol

    def replacement(
        self, old: Order, changes: OrderChanges, owner: Account, price_of: PriceOf
    ) -> OrderRequest:
        check_replaceable(old)
        check_changes(old, changes)
        request = replacement_request(old, changes)
        if old.crypto:
            crypto.check_replacement(old, request, owner, price_of)
        return request

    def fee(self, draft: FillDraft, market: Market) -> Fee | None:
        """A crypto fill's fee, its CFEE activity posted ``cfee_delay_ms`` later; none for
        equities."""
        order = draft.order
        if not order.crypto:
            return None
        settings = self.settings()
        return crypto.make_fee(
            order,
            draft.fill_id,
            draft.qty,
            draft.price,
            draft.at_us,
            bps=settings.crypto_fee_bps,
            rate=crypto.quote_rate(order.symbol, market.price_of),
            delay_us=lambda: market.delay_us(settings.cfee_delay_ms),
            new_uuid=market.new_uuid,
        )

    def settle(self, ledger: Ledger, fill: Fill, price_of: PriceOf) -> None:
        """A crypto fill changes the coin balances at once, net of its fee; an equity fill
        the position and cash."""
        order = fill.order
        if not order.crypto:
            ledger.record(order.symbol, order.side, fill.qty, fill.price)
            return
        amount = Decimal(0) if fill.fee is None else fill.fee.amount
        rate = crypto.quote_rate(order.symbol, price_of)
        crypto.settle(ledger, order.symbol, order.side, fill.qty, fill.price, amount, rate)
