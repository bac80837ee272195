"""Crypto as Alpaca trades it: pairs, the order rules, balances, fees and CFEE activities.

Pure functions and small records; the engine calls them at a few hooks (submission, a fill,
the close) and keeps the state. What Alpaca does, and where it was seen:

- Orders and fills name a pair ``BTC/USD``; an order placed as ``BTCUSD`` (the old symbology,
  still accepted) is stored and echoed as ``BTC/USD``. Positions name the asset held without
  the slash, ``BTCUSD``, with ``asset_class`` ``crypto``.
- Only simple ``market``, ``limit`` and ``stop_limit`` orders, ``gtc`` or ``ioc``, in
  fractions (docs "Crypto Orders"). Refusals: 422 ``invalid crypto time_in_force``
  (42210000), 422 ``invalid order type for crypto order`` (40010001), 422 ``crypto orders not
  allowed for advanced order_class: otoco`` (42210000; ``oco``, ``oto``).
- No shorting and no margin: a sell beyond the asset held (less what open sells hold) is 403
  ``insufficient balance for BTC (requested: 0.12, available: 0.119784)`` (40310000, with
  ``available``, ``balance`` and ``symbol`` fields); a buy beyond the cash left is the same
  for ``USD``. Alpaca's paper venue also refuses an order worth less than $10: 403 ``cost
  basis must be >= minimal amount of order 10`` (``min_notional``; 0 turns it off).
- A notional order (``brokers.alpaca.paper.notional``) is weighed by its dollars: the $10 floor and
  the cash a buy spends are its notional, not its sized quantity at the price.
- Trading never stops: the equity session does not apply (the engine's hooks).
- The fee is taken in the asset the fill credits (docs "Crypto Fees"): a buy's in the coin,
  rounded up to 1e-9, a sell's in USD, rounded up to the cent. The balance changes at the
  fill; the ``CFEE`` activity is posted later (Alpaca: "calculated and posted end of day"),
  one per fill, with no order id, an id stamped with its date only
  (``20220812000000000::<uuid>``), ``created_at`` (the posting time) and ``currency`` USD.
- A pair quoted in another coin (``ETH/BTC``, ``BTC/USDT``) spends and credits that coin:
  every asset is held in the position of its USD pair, valued at that pair's price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

from brokers.alpaca.paper.assets import CRYPTO_PAIR, asset_for
from brokers.paper.ledger import Ledger
from brokers.paper.model import (
    CENT,
    QTY_QUANTUM,
    Fee,
    Order,
    OrderRequest,
    Refusal,
    eastern_wall,
    fmt_decimal,
)
from core.enums import OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from brokers.paper.accounts import Account

USD = "USD"
CRYPTO_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT})
CRYPTO_TIFS = frozenset({TimeInForce.GTC, TimeInForce.IOC})
# What Alpaca calls the order classes in its refusal: a bracket is an "otoco".
_CLASS_NAMES = {"bracket": "otoco", "oco": "oco", "oto": "oto"}
BPS = Decimal(10_000)
USD_FEE = "Coin Pair Transaction Fee (USD)"
COIN_FEE = "Coin Pair Transaction Fee (Non USD)"
PriceOf = Callable[[str], Decimal]


class CryptoRefusal(Refusal):
    """What Alpaca answers instead of taking a crypto order."""


@dataclass(frozen=True, slots=True)
class CryptoSettings:
    """The fee per fill in basis points of what it credits (Alpaca's tier-1 taker; 0: none),
    when its CFEE activity is posted, and the smallest order in dollars (Alpaca paper's
    floor; 0: none). The names are the fault settings'."""

    crypto_fee_bps: Decimal = Decimal(25)
    cfee_delay_ms: tuple[int, int] = (1000, 5000)
    crypto_min_notional: Decimal = Decimal(10)


def in_usd(fee: Fee) -> bool:
    return fee.asset == USD


def fee_date(fee: Fee) -> str:
    """The posting day in New York, as the CFEE id carries it (``YYYY-MM-DD``)."""
    return eastern_wall(fee.posted_us).strftime("%Y-%m-%d")


def fee_symbol(fee: Fee) -> str:
    """The position the fee came out of (``BTCUSD``); none for USD."""
    return position_symbol(holding(fee.asset))


# -- symbols -----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def pair_of(symbol: str) -> str | None:
    """The ``BASE/QUOTE`` pair a crypto symbol names (``BTCUSD`` -> ``BTC/USD``); None for
    anything else."""
    if CRYPTO_PAIR.fullmatch(symbol):
        return symbol
    asset = asset_for(symbol)
    if asset is not None and asset.asset_class == "crypto":
        return asset.symbol
    return None


def is_pair(symbol: str) -> bool:
    return pair_of(symbol) is not None


def split(pair: str) -> tuple[str, str]:
    base, _, quote = pair.partition("/")
    return base, quote


def holding(asset: str) -> str:
    """The ledger key an asset is held under: its USD pair (``BTC`` -> ``BTC/USD``)."""
    return f"{asset}/{USD}"


def held_in(pair: str) -> str:
    """Where a pair's base asset is held: the pair itself when it is quoted in USD."""
    return holding(split(pair)[0])


def position_symbol(key: str) -> str:
    """Alpaca names crypto positions without the slash: ``BTC/USD`` -> ``BTCUSD``."""
    return key.replace("/", "")


def spends_usd(pair: str) -> bool:
    """A buy of this pair spends dollars (held as buying power), not another coin."""
    return split(pair)[1] == USD


# -- the rules ---------------------------------------------------------------------------


def order_problem(request: OrderRequest) -> CryptoRefusal | None:
    """Why Alpaca refuses this crypto order's terms, or None."""
    if request.order_class != "simple":
        name = _CLASS_NAMES[request.order_class]
        return CryptoRefusal(
            422, 42210000, f"crypto orders not allowed for advanced order_class: {name}"
        )
    if request.type not in CRYPTO_TYPES:
        return CryptoRefusal(422, 40010001, "invalid order type for crypto order")
    if request.time_in_force not in CRYPTO_TIFS:
        return CryptoRefusal(422, 42210000, "invalid crypto time_in_force")
    return None


def admit(
    request: OrderRequest,
    owner: Account,
    price_of: PriceOf,
    *,
    min_notional: Decimal,
    check_funds: bool = True,
) -> OrderRequest:
    """The request under its pair's name (``BTCUSD`` is ``BTC/USD``) if Alpaca would take
    it; else ``CryptoRefusal``: the terms, an order worth less than ``min_notional``
    dollars, more than the balance left of the asset it spends."""
    pair = pair_of(request.symbol)
    if pair is not None and pair != request.symbol:
        request = replace(request, symbol=pair)
    problem = order_problem(request)
    if problem is not None:
        raise problem
    if check_funds:
        _check_funds(request, owner, price_of, min_notional)
    return request


def _check_funds(
    request: OrderRequest, owner: Account, price_of: PriceOf, min_notional: Decimal
) -> None:
    base, quote = split(request.symbol)
    price = request.limit_price or price_of(request.symbol)
    notional = request.notional  # in the quote asset: a notional order's own dollars
    if notional is None:
        notional = request.qty * price
    if min_notional > 0:
        usd = notional if quote == USD else notional * price_of(holding(quote))
        if usd < min_notional:
            message = f"cost basis must be >= minimal amount of order {fmt_decimal(min_notional)}"
            raise CryptoRefusal(403, 40310000, message)
    if request.side is Side.BUY and quote == USD:
        cash = owner.ledger.cash
        _check_balance(USD, quote, notional, cash, owner.buying_power(price_of))
    elif request.side is Side.BUY:
        balance = owner.long_qty(holding(quote))
        left = balance - held(quote, owner.open.values(), price_of)
        _check_balance(quote, quote, notional, balance, left)
    else:
        balance = owner.long_qty(holding(base))
        left = balance - held(base, owner.open.values(), price_of)
        _check_balance(base, quote, request.qty, balance, left)


def check_replacement(old: Order, request: OrderRequest, owner: Account, price_of: PriceOf) -> None:
    """A replacement keeps the crypto terms, and a sell may not outgrow what is held (the
    order it replaces gives back what it holds; what that one filled is gone already)."""
    problem = order_problem(request)
    if problem is not None:
        raise problem
    if request.side is Side.SELL:
        base, quote = split(request.symbol)
        others = [order for order in owner.open.values() if order is not old]
        balance = owner.long_qty(holding(base))
        left = balance - held(base, others, price_of)
        _check_balance(base, quote, request.qty, balance, left)


def held(asset: str, open_orders: Iterable[Order], price_of: PriceOf) -> Decimal:
    """How much of a coin open orders hold: sells of it, and buys that pay with it."""
    total = Decimal(0)
    for order in open_orders:
        if not order.crypto or not order.is_open:
            continue
        base, quote = split(order.symbol)
        if order.side is Side.SELL and base == asset:
            total += order.leaves_qty
        elif order.side is Side.BUY and quote == asset and quote != USD:
            total += order.leaves_qty * (order.limit_price or price_of(order.symbol))
    return total


def _check_balance(
    asset: str, quote: str, requested: Decimal, balance: Decimal, available: Decimal
) -> None:
    if requested <= available:
        return
    shown = max(available, Decimal(0))
    if asset == USD:
        requested, shown, balance = (v.quantize(CENT) for v in (requested, shown, balance))
    message = (
        f"insufficient balance for {asset} "
        f"(requested: {fmt_decimal(requested)}, available: {fmt_decimal(shown)})"
    )
    extra = {"available": fmt_decimal(shown), "balance": fmt_decimal(balance), "symbol": quote}
    raise CryptoRefusal(403, 40310000, message, extra)


# -- fees and balances -------------------------------------------------------------------


def fee_amount(side: Side, qty: Decimal, price: Decimal, pair: str, bps: Decimal) -> Decimal:
    """``bps`` of what the fill credits, rounded up: a buy's coin to 1e-9, a sell's dollars
    to the cent (another quote coin to 1e-9)."""
    rate = bps / BPS
    if side is Side.BUY:
        return (qty * rate).quantize(QTY_QUANTUM, rounding=ROUND_CEILING)
    quantum = CENT if split(pair)[1] == USD else QTY_QUANTUM
    return (qty * price * rate).quantize(quantum, rounding=ROUND_CEILING)


def make_fee(
    order: Order,
    fill_id: str,
    qty: Decimal,
    price: Decimal,
    at_us: int,
    *,
    bps: Decimal,
    rate: Decimal,
    delay_us: Callable[[], int],
    new_uuid: Callable[[], str],
) -> Fee | None:
    """A crypto fill's fee (None when the rate makes it nothing), posted ``delay_us()``
    later under an id ending in ``new_uuid()``; ``rate`` is the quote asset's USD price."""
    amount = fee_amount(order.side, qty, price, order.symbol, bps)
    if amount <= 0:
        return None
    asset = fee_asset(order.side, order.symbol)
    posted = at_us + delay_us()
    return Fee(
        id=fee_id(posted, new_uuid()),
        fill_id=fill_id,
        order=order,
        asset=asset,
        amount=amount,
        price=fee_price(order, asset, price, rate),
        time_us=at_us,
        posted_us=posted,
    )


def quote_rate(pair: str, price_of: PriceOf) -> Decimal:
    """The USD price of a pair's quote asset (1 for USD)."""
    quote = split(pair)[1]
    return Decimal(1) if quote == USD else price_of(holding(quote))


def fee_asset(side: Side, pair: str) -> str:
    """The asset a fill credits, so the one its fee is taken in."""
    base, quote = split(pair)
    return base if side is Side.BUY else quote


def settle(
    ledger: Ledger, pair: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal, rate: Decimal
) -> None:
    """Apply one fill net of its fee: the credited asset arrives less the fee. ``rate`` is the
    quote asset's USD price (1 for USD), so every position is valued in dollars."""
    base, quote = split(pair)
    if quote == USD:
        if side is Side.BUY:
            ledger.adjust(holding(base), Side.BUY, qty - fee, price)
            ledger.cash -= qty * price
        else:
            ledger.adjust(holding(base), Side.SELL, qty, price)
            ledger.cash += qty * price - fee
        return
    spent_or_got = qty * price
    if side is Side.BUY:
        ledger.adjust(holding(base), Side.BUY, qty - fee, price * rate)
        ledger.adjust(holding(quote), Side.SELL, spent_or_got, rate)
    else:
        ledger.adjust(holding(base), Side.SELL, qty, price * rate)
        ledger.adjust(holding(quote), Side.BUY, spent_or_got - fee, rate)


def fee_price(order: Order, asset: str, price: Decimal, rate: Decimal) -> Decimal | None:
    """The fee asset's USD price at a fill at ``price`` (the CFEE activity's ``price``):
    none for dollars, the fill's for the base coin, ``rate`` for a quote coin."""
    if asset == USD:
        return None
    return price * rate if asset == split(order.symbol)[0] else rate


def fee_id(posted_us: int, tail: str) -> str:
    """A CFEE id as Alpaca writes it: its New York date, a zero time, a uuid."""
    return f"{eastern_wall(posted_us).strftime('%Y%m%d')}000000000::{tail}"
