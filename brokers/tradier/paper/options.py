"""US equity options as the paper Tradier lists them: an OCC symbol is listed the first time
the engine meets it (an order, a price), trades in the regular session only, in whole
contracts at a cent tick, and its fills move 100 shares' worth of cash per contract
(``OptionRules``).

An option's price starts from its symbol (between 0.20 and 5.00) and moves as the engine
moves every price; ``/_sim`` sets it like any other. An opening buy needs its premium, at its
limit or the market, within the buying power; open option orders hold none of it, and a
written (sold to open) contract is not margined [U: Tradier checks the account's option
level and margin, which the paper exchange does not model].
"""

from __future__ import annotations

from decimal import Decimal

from brokers.paper.accounts import Account
from brokers.paper.engine import InsufficientBuyingPowerError, Listing
from brokers.paper.ledger import Ledger
from brokers.paper.model import CENT, Fill, OrderRequest, initial_price
from brokers.paper.rules import NeutralRules, PriceOf
from core.enums import Side
from core.instruments import OPTION_MULTIPLIER, is_option

WHOLE = Decimal(1)


class OptionRules(NeutralRules):
    """A contract's cash is its price times 100 shares; its orders hold no buying power."""

    def admit(
        self, request: OrderRequest, owner: Account, price_of: PriceOf, *, check_funds: bool
    ) -> OrderRequest:
        if check_funds and request.side is Side.BUY and request.qty is not None:
            price = request.limit_price or price_of(request.symbol)
            if request.qty * price * OPTION_MULTIPLIER > owner.buying_power(price_of):
                raise InsufficientBuyingPowerError(request.symbol)
        return request

    def reserves(self, symbol: str) -> bool:
        return False

    def settle(self, ledger: Ledger, fill: Fill, price_of: PriceOf) -> None:
        order = fill.order
        ledger.adjust(order.symbol, order.side, fill.qty, fill.price)
        cash = fill.qty * fill.price * OPTION_MULTIPLIER
        ledger.cash -= cash if order.side is Side.BUY else -cash


OPTION_RULES = OptionRules()


def option_listing(symbol: str) -> Listing | None:
    """An OCC symbol's listing, made when the engine first meets it; None for others."""
    if not is_option(symbol):
        return None
    start = max(Decimal("0.20"), (initial_price(symbol) / 100).quantize(CENT))
    return Listing(start, CENT, WHOLE, OPTION_RULES, around_the_clock=False)
