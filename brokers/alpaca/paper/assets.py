"""The assets the paper exchange lists, in the shape of Alpaca's ``/v2/assets``.

The universe is a fixed list: common US equities and crypto pairs, with realistic exchanges,
names, flags and crypto increments (plausible values, not Alpaca's live data). The exchange
takes orders for any well-formed symbol, though, so whatever it is asked about or has traded
gets an answer too: a symbol outside the list that the engine has a book for, or any
well-formed equity ticker (``ZZZZ``, ``BRK.C``), is a synthetic active, tradable,
fractionable, shortable ``us_equity`` on NASDAQ; a traded ``BASE/QUOTE`` pair outside the list
is a synthetic crypto pair, so that ``is_crypto`` and the asset's class agree.

Crypto pairs are named as Alpaca names them now (``BTC/USD``); the old form without the slash
(``BTCUSD``) finds the same asset. Ids are ``brokers.paper.model.asset_id`` of the symbol, the
ids orders and positions carry.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from brokers.paper.model import asset_id, fmt_decimal

AssetClass = Literal["us_equity", "crypto"]
ASSET_CLASSES: tuple[AssetClass, ...] = ("us_equity", "crypto")
ASSET_STATUSES = ("active", "inactive", "all")
# Alpaca's exchange vocabulary (alpaca-py's AssetExchange, without the empty one).
EXCHANGES = frozenset(
    {
        "AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC", "CRYPTO",
        "FTXU", "CBSE", "GNSS", "ERSX", "ASCX",
    }
)  # fmt: skip
# The values Alpaca documents for the ``attributes`` filter and field.
ATTRIBUTES = frozenset(
    {
        "ptp_no_exception", "ptp_with_exception", "ipo", "has_options", "options_late_close",
        "fractional_eh_enabled", "overnight_tradable", "overnight_halted",
    }
)  # fmt: skip
# Margin requirement (percent) of a marginable asset and of one that is not.
MARGIN_PERCENT = 30
NO_MARGIN_PERCENT = 100
EQUITY_TICKER = re.compile(r"[A-Z]{1,5}(?:\.[A-Z]{1,2})?")
CRYPTO_PAIR = re.compile(r"[A-Z0-9]{2,10}/[A-Z0-9]{2,10}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Asset:
    """What the exchange tells clients about a symbol; sizes and prices are exact."""

    symbol: str
    asset_class: AssetClass
    exchange: str
    name: str
    tradable: bool = True
    fractionable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    marginable: bool = True
    min_order_size: Decimal | None = None
    min_trade_increment: Decimal | None = None
    price_increment: Decimal | None = None
    attributes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return asset_id(self.symbol)

    @property
    def status(self) -> str:
        return "active"  # the universe holds no delisted asset

    @property
    def margin_requirement(self) -> int:
        """Percent of a position's value to hold; 100 for what cannot be bought on margin."""
        return MARGIN_PERCENT if self.marginable else NO_MARGIN_PERCENT


def _equity(
    symbol: str,
    exchange: str,
    name: str,
    *,
    fractionable: bool = True,
    shortable: bool = True,
    easy_to_borrow: bool = True,
    marginable: bool = True,
) -> Asset:
    return Asset(
        symbol,
        "us_equity",
        exchange,
        name,
        fractionable=fractionable,
        shortable=shortable,
        easy_to_borrow=easy_to_borrow,
        marginable=marginable,
        attributes=("has_options",),
    )


def _crypto(symbol: str, name: str, min_order: str, increment: str, tick: str) -> Asset:
    """Crypto trades in fractions, on cash only: never shorted, never on margin."""
    return Asset(
        symbol,
        "crypto",
        "CRYPTO",
        name,
        shortable=False,
        easy_to_borrow=False,
        marginable=False,
        min_order_size=Decimal(min_order),
        min_trade_increment=Decimal(increment),
        price_increment=Decimal(tick),
    )


UNIVERSE: tuple[Asset, ...] = (
    _equity("AAPL", "NASDAQ", "Apple Inc. Common Stock"),
    _equity("MSFT", "NASDAQ", "Microsoft Corporation Common Stock"),
    _equity("AMZN", "NASDAQ", "Amazon.com, Inc. Common Stock"),
    _equity("GOOGL", "NASDAQ", "Alphabet Inc. Class A Common Stock"),
    _equity("GOOG", "NASDAQ", "Alphabet Inc. Class C Capital Stock"),
    _equity("NVDA", "NASDAQ", "NVIDIA Corporation Common Stock"),
    _equity("META", "NASDAQ", "Meta Platforms, Inc. Class A Common Stock"),
    _equity("TSLA", "NASDAQ", "Tesla, Inc. Common Stock"),
    _equity("NFLX", "NASDAQ", "Netflix, Inc. Common Stock"),
    _equity("AMD", "NASDAQ", "Advanced Micro Devices, Inc. Common Stock"),
    _equity("INTC", "NASDAQ", "Intel Corporation Common Stock"),
    _equity("COST", "NASDAQ", "Costco Wholesale Corporation Common Stock"),
    _equity("QQQ", "NASDAQ", "Invesco QQQ Trust, Series 1"),
    _equity("JPM", "NYSE", "JPMorgan Chase & Co. Common Stock"),
    _equity("V", "NYSE", "Visa Inc. Class A Common Stock"),
    _equity("BAC", "NYSE", "Bank of America Corporation Common Stock"),
    _equity("KO", "NYSE", "Coca-Cola Company (The) Common Stock"),
    _equity("DIS", "NYSE", "Walt Disney Company (The) Common Stock"),
    _equity("XOM", "NYSE", "Exxon Mobil Corporation Common Stock"),
    _equity("BRK.B", "NYSE", "Berkshire Hathaway Inc. Class B Common Stock"),
    # A share worth hundreds of thousands of dollars: whole shares only, none to borrow.
    _equity(
        "BRK.A",
        "NYSE",
        "Berkshire Hathaway Inc. Class A Common Stock",
        fractionable=False,
        shortable=False,
        easy_to_borrow=False,
    ),
    # Heavily shorted: shortable, but hard to borrow and not marginable.
    _equity(
        "GME",
        "NYSE",
        "GameStop Corporation Class A Common Stock",
        easy_to_borrow=False,
        marginable=False,
    ),
    _equity("SPY", "ARCA", "SPDR S&P 500 ETF Trust"),
    _equity("IWM", "ARCA", "iShares Russell 2000 ETF"),
    _equity("DIA", "ARCA", "SPDR Dow Jones Industrial Average ETF Trust"),
    _equity("GLD", "ARCA", "SPDR Gold Trust, SPDR Gold Shares"),
    _crypto("BTC/USD", "Bitcoin / US Dollar", "0.0000099", "0.000000001", "1"),
    _crypto("ETH/USD", "Ethereum / US Dollar", "0.00031", "0.000000001", "0.1"),
    _crypto("SOL/USD", "Solana / US Dollar", "0.0066", "0.000000001", "0.0025"),
    _crypto("LTC/USD", "Litecoin / US Dollar", "0.012", "0.000000001", "0.005"),
    _crypto("DOGE/USD", "Dogecoin / US Dollar", "5.5", "0.000000001", "0.0000005"),
    _crypto("USDT/USD", "Tether / US Dollar", "1", "0.000000001", "0.0001"),
    _crypto("BTC/USDT", "Bitcoin / USD Tether", "0.0000099", "0.000000001", "1"),
    _crypto("ETH/BTC", "Ethereum / Bitcoin", "0.00031", "0.000000001", "0.000001"),
)
_BY_SYMBOL = {asset.symbol: asset for asset in UNIVERSE}
# The old crypto symbology: BTCUSD for BTC/USD.
_BY_COMPACT = {a.symbol.replace("/", ""): a for a in UNIVERSE if a.asset_class == "crypto"}


def _listed(symbol: str) -> Asset | None:
    return _BY_SYMBOL.get(symbol) or _BY_COMPACT.get(symbol)


def _synthetic(symbol: str) -> Asset:
    if CRYPTO_PAIR.fullmatch(symbol):
        return Asset(
            symbol,
            "crypto",
            "CRYPTO",
            symbol,
            shortable=False,
            easy_to_borrow=False,
            marginable=False,
        )
    return Asset(symbol, "us_equity", "NASDAQ", symbol)


def is_crypto(symbol: str) -> bool:
    """A listed crypto pair in either symbology, or any ``BASE/QUOTE`` pair."""
    listed = _listed(symbol)
    if listed is not None:
        return listed.asset_class == "crypto"
    return CRYPTO_PAIR.fullmatch(symbol) is not None


def asset_for(symbol: str, traded: Collection[str] = ()) -> Asset | None:
    """The listed asset, else a synthetic one for a symbol in ``traded`` (the symbols the
    engine has books for) or a well-formed equity ticker; None for anything else."""
    listed = _listed(symbol)
    if listed is not None:
        return listed
    if symbol in traded or EQUITY_TICKER.fullmatch(symbol):
        return _synthetic(symbol)
    return None


def find_asset(symbol_or_asset_id: str, traded: Collection[str] = ()) -> Asset | None:
    """``GET /v2/assets/{symbol_or_asset_id}``: by symbol (either crypto form) or by id."""
    if UUID.fullmatch(symbol_or_asset_id):
        for symbol in (*_BY_SYMBOL, *traded):
            if asset_id(symbol) == symbol_or_asset_id:
                return asset_for(symbol, traded)
        return None
    return asset_for(symbol_or_asset_id, traded)


def list_assets(
    traded: Iterable[str] = (),
    *,
    asset_class: AssetClass | None = None,
    exchange: str | None = None,
    attributes: Collection[str] = (),
) -> list[Asset]:
    """The universe plus the traded symbols outside it, in Alpaca's order (class, exchange,
    symbol); ``attributes`` keeps assets with any of them."""
    traded = set(traded)
    found = {asset.symbol: asset for asset in UNIVERSE}
    for symbol in traded:
        asset = asset_for(symbol, traded)
        if asset is not None:
            found.setdefault(asset.symbol, asset)
    return sorted(
        (
            asset
            for asset in found.values()
            if asset_class in (None, asset.asset_class)
            and exchange in (None, asset.exchange)
            and (not attributes or not set(attributes).isdisjoint(asset.attributes))
        ),
        key=lambda asset: (asset.asset_class, asset.exchange, asset.symbol),
    )


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else fmt_decimal(value)


def asset_json(asset: Asset) -> dict[str, object]:
    """Alpaca's asset object; the crypto increments only for crypto, as decimal strings."""
    body: dict[str, object] = {
        "id": asset.id,
        "class": asset.asset_class,
        "exchange": asset.exchange,
        "symbol": asset.symbol,
        "name": asset.name,
        "status": asset.status,
        "tradable": asset.tradable,
        "marginable": asset.marginable,
        "maintenance_margin_requirement": asset.margin_requirement,
        "margin_requirement_long": str(asset.margin_requirement),
        "margin_requirement_short": str(asset.margin_requirement),
        "shortable": asset.shortable,
        "easy_to_borrow": asset.easy_to_borrow,
        "fractionable": asset.fractionable,
        "attributes": list(asset.attributes),
    }
    if asset.asset_class == "crypto":
        body["min_order_size"] = _decimal(asset.min_order_size)
        body["min_trade_increment"] = _decimal(asset.min_trade_increment)
        body["price_increment"] = _decimal(asset.price_increment)
    return body
