"""The instruments this venue lists, with what ``GET /v3/accounts/{id}/instruments`` says of
them (units precision, minimum and maximum, margin rate) and where the paper market starts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from brokers.paper.engine import Listing

ENGINE_PREFIX = "oanda:"
HOME = "USD"  # every paper account's home currency


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    kind: str  # CURRENCY or METAL
    display_name: str
    pip_location: int
    display_precision: int
    trade_units_precision: int
    minimum_trade_size: Decimal
    maximum_order_units: Decimal
    margin_rate: Decimal
    price: Decimal  # where the paper market starts

    @property
    def base(self) -> str:
        return self.name.partition("_")[0]

    @property
    def quote(self) -> str:
        return self.name.rpartition("_")[2]

    @property
    def engine_symbol(self) -> str:
        """The engine's name, apart from every other dialect's symbols."""
        return ENGINE_PREFIX + self.name

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.display_precision)

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.trade_units_precision)

    @property
    def listing(self) -> Listing:
        return Listing(self.price, self.tick, self.lot, whole_fills=True)  # one ORDER_FILL an order

    def price_str(self, price: Decimal) -> str:
        return f"{price.quantize(self.tick):f}"

    def units_str(self, units: Decimal) -> str:
        return f"{units.quantize(self.lot):f}"

    def info(self) -> dict[str, object]:
        """The instrument as OANDA's account instruments answer lists it."""
        return {
            "name": self.name,
            "type": self.kind,
            "displayName": self.display_name,
            "pipLocation": self.pip_location,
            "displayPrecision": self.display_precision,
            "tradeUnitsPrecision": self.trade_units_precision,
            "minimumTradeSize": self.units_str(self.minimum_trade_size),
            "maximumTrailingStopDistance": "1.00000",
            "minimumTrailingStopDistance": "0.00050",
            "maximumPositionSize": "0",
            "maximumOrderUnits": self.units_str(self.maximum_order_units),
            "marginRate": f"{self.margin_rate:f}",
            "guaranteedStopLossOrderMode": "DISABLED",
            "tags": [],
            "financing": {"longRate": "0", "shortRate": "0", "financingDaysOfWeek": []},
        }


def _instrument(
    name: str,
    kind: str,
    pip: int,
    display: int,
    units: int,
    minimum: str,
    maximum: str,
    margin: str,
    price: str,
) -> Instrument:
    base, _, quote = name.partition("_")
    return Instrument(
        name,
        kind,
        f"{base}/{quote}",
        pip,
        display,
        units,
        Decimal(minimum),
        Decimal(maximum),
        Decimal(margin),
        Decimal(price),
    )


# As OANDA's practice API lists them (precisions and sizes; margin rates of a US account).
INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        _instrument("EUR_USD", "CURRENCY", -4, 5, 0, "1", "100000000", "0.02", "1.08000"),
        _instrument("GBP_USD", "CURRENCY", -4, 5, 0, "1", "100000000", "0.05", "1.27000"),
        _instrument("USD_JPY", "CURRENCY", -2, 3, 0, "1", "100000000", "0.04", "150.000"),
        _instrument("XAU_USD", "METAL", -2, 3, 0, "1", "500000", "0.05", "2350.000"),
    )
}
