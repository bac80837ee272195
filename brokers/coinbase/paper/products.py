"""The products this venue lists, their Get Product entries and Coinbase's size and price
checks (``base_increment``, ``quote_increment``, ``price_increment``, min and max sizes)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from brokers.paper.engine import Listing

Json = dict[str, object]
ENGINE_PREFIX = "coinbase:"
NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "USD": "US Dollar"}


def plain(value: Decimal) -> str:
    """A decimal string as Coinbase writes sizes and prices: no exponent, no padding."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    base: str
    quote: str
    price: Decimal  # where the paper market starts
    price_increment: Decimal
    base_increment: Decimal
    quote_increment: Decimal
    base_min_size: Decimal
    base_max_size: Decimal
    quote_min_size: Decimal
    quote_max_size: Decimal

    @property
    def engine_symbol(self) -> str:
        """The engine's name for the product, apart from every other dialect's symbols."""
        return ENGINE_PREFIX + self.product_id

    @property
    def listing(self) -> Listing:
        return Listing(self.price, self.price_increment, self.base_increment)

    def info(self, price: Decimal) -> Json:
        """Get Product's answer (the fields of its documented example that apply to spot)."""
        return {
            "product_id": self.product_id,
            "price": plain(price),
            "price_percentage_change_24h": "0",
            "volume_24h": "0",
            "volume_percentage_change_24h": "0",
            "base_increment": plain(self.base_increment),
            "quote_increment": plain(self.quote_increment),
            "quote_min_size": plain(self.quote_min_size),
            "quote_max_size": plain(self.quote_max_size),
            "base_min_size": plain(self.base_min_size),
            "base_max_size": plain(self.base_max_size),
            "base_name": NAMES.get(self.base, self.base),
            "quote_name": NAMES.get(self.quote, self.quote),
            "watched": False,
            "is_disabled": False,
            "new": False,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": self.quote,
            "base_currency_id": self.base,
            "fcm_trading_session_details": None,
            "mid_market_price": "",
            "alias": "",
            "alias_to": [],
            "base_display_symbol": self.base,
            "quote_display_symbol": self.quote,
            "view_only": False,
            "price_increment": plain(self.price_increment),
            "display_name": f"{self.base}-{self.quote}",
            "product_venue": "CBE",
            "approximate_quote_24h_volume": "0",
        }


def _product(
    product_id: str, price: str, price_step: str, base_step: str, quote_step: str,
    base_min: str, base_max: str, quote_min: str,
) -> Product:  # fmt: skip
    base, _, quote = product_id.partition("-")
    return Product(
        product_id, base, quote, Decimal(price), Decimal(price_step), Decimal(base_step),
        Decimal(quote_step), Decimal(base_min), Decimal(base_max), Decimal(quote_min),
        Decimal("150000000") if quote == "USD" else Decimal("3000"),
    )  # fmt: skip


# Increments and minimums as Coinbase lists these products (2025); prices are a start.
PRODUCTS: dict[str, Product] = {
    product.product_id: product
    for product in (
        _product("BTC-USD", "60000.00", "0.01", "0.00000001", "0.01", "0.00000001", "3400", "1"),
        _product("ETH-USD", "3000.00", "0.01", "0.00000001", "0.01", "0.00000001", "42000", "1"),
        _product("SOL-USD", "150.00", "0.01", "0.00000001", "0.01", "0.00000001", "300000", "1"),
        _product(
            "ETH-BTC", "0.03300", "0.00001", "0.00000001", "0.00000001", "0.00000001",
            "42000", "0.00001",
        ),
    )
}  # fmt: skip


def currencies() -> list[str]:
    """Every currency a listed product names, sorted."""
    return sorted({c for p in PRODUCTS.values() for c in (p.base, p.quote)})
