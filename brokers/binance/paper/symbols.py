"""The pairs this venue lists, their exchangeInfo entries and Binance's filter checks
(filters.md: PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from brokers.binance.paper.errors import filter_failure
from brokers.paper.engine import Listing

Json = dict[str, object]
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT")
ALL_ORDER_TYPES = (
    "LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)  # fmt: skip
STP_MODES = ("NONE", "EXPIRE_MAKER", "EXPIRE_TAKER", "EXPIRE_BOTH", "DECREMENT")
MAX_PRICE = Decimal(1_000_000)
ENGINE_PREFIX = "binance:"


def fmt8(value: Decimal) -> str:
    """Binance's decimal strings: eight places (``"0.00100000"``)."""
    return f"{value.quantize(Decimal('1e-8')):f}"


@dataclass(frozen=True, slots=True)
class Pair:
    symbol: str
    base: str
    quote: str
    price: Decimal  # where the paper market starts
    tick: Decimal
    min_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal = Decimal(9_000_000)

    @property
    def engine_symbol(self) -> str:
        """The engine's name for the pair: apart from Alpaca's ``BTCUSDT`` (``BTC/USDT``)."""
        return ENGINE_PREFIX + self.symbol

    @property
    def listing(self) -> Listing:
        return Listing(self.price, self.tick, self.step)

    def check(self, type: str, qty: Decimal, price: Decimal | None, market: Decimal) -> None:
        """Binance's filters in its order: price, then lot size, then notional."""
        if price is not None and (
            price < self.min_price or price > MAX_PRICE or (price - self.min_price) % self.tick
        ):
            raise filter_failure("PRICE_FILTER")
        if type == "MARKET" and (
            qty < self.min_qty or qty > self.market_max_qty or qty % self.step
        ):
            raise filter_failure("MARKET_LOT_SIZE")
        if qty < self.min_qty or qty > self.max_qty or (qty - self.min_qty) % self.step:
            raise filter_failure("LOT_SIZE")
        notional = qty * (market if price is None else price)
        if notional < self.min_notional or notional > self.max_notional:
            raise filter_failure("NOTIONAL")

    def info(self) -> Json:
        """The symbol's exchangeInfo entry, shaped as rest-api.md's example."""
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": True,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt8(self.min_price),
                    "maxPrice": fmt8(MAX_PRICE),
                    "tickSize": fmt8(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt8(self.min_qty),
                    "maxQty": fmt8(self.max_qty),
                    "stepSize": fmt8(self.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt8(self.min_qty),
                    "maxQty": fmt8(self.market_max_qty),
                    "stepSize": fmt8(self.step),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt8(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": fmt8(self.max_notional),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": list(STP_MODES),
        }


def _pair(symbol: str, base: str, quote: str, price: str, tick: str, step: str, **kw: str) -> Pair:
    min_notional = Decimal(kw.get("min_notional", "5"))
    return Pair(
        symbol,
        base,
        quote,
        Decimal(price),
        Decimal(tick),
        Decimal(tick),
        Decimal(step),
        Decimal(step),
        Decimal(kw.get("max_qty", "9000")),
        Decimal(kw.get("market_max_qty", "100")),
        min_notional,
    )


# Steps and minimums as Binance lists them for these pairs (mid 2025); prices are a start.
PAIRS: dict[str, Pair] = {
    pair.symbol: pair
    for pair in (
        _pair("BTCUSDT", "BTC", "USDT", "90000.00", "0.01", "0.00001", market_max_qty="120"),
        _pair("ETHUSDT", "ETH", "USDT", "3000.00", "0.01", "0.0001", market_max_qty="2000"),
        _pair("BNBUSDT", "BNB", "USDT", "600.00", "0.01", "0.001", market_max_qty="5000"),
        _pair(
            "ETHBTC", "ETH", "BTC", "0.03300", "0.00001", "0.0001",
            min_notional="0.0001", market_max_qty="1000",
        ),
    )
}  # fmt: skip
