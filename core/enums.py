"""The domain vocabulary: order statuses, sides, types, intents. No I/O, no SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Normalized order status; every adapter maps its broker's strings to these."""

    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    REPLACED = "REPLACED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[OrderStatus] = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
    }
)
OPEN_STATUSES: frozenset[OrderStatus] = frozenset(OrderStatus) - TERMINAL_STATUSES


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"  # readable from brokers (adopted orders); not placed by us


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    OPG = "opg"  # at the open; readable from brokers, not placed by us
    CLS = "cls"  # at the close; readable from brokers, not placed by us


class OrderClass(StrEnum):
    """An order alone, or with exit legs the broker holds for it: a bracket's take-profit
    and stop-loss, an OTO's one exit, an OCO's stop-loss beside its take-profit."""

    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"


class Intent(StrEnum):
    """Whether an order opens a trade or closes one (seed 002's ENTRY/EXIT)."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"


class OrderOrigin(StrEnum):
    """How ordersync came to know an order."""

    PLACED = "placed"  # ordersync.place_order submitted it
    TRACKED = "tracked"  # the trading service placed it and handed it over
    ADOPTED = "adopted"  # found at the broker by reconciliation (external)


class ReportSource(StrEnum):
    """Which path delivered a broker report; recorded on fills and history rows."""

    PLACEMENT = "placement"
    MONITOR = "monitor"
    SWEEP = "sweep"
    DEEP = "deep"
    STREAM = "stream"
    MANUAL = "manual"


class BrokerKind(StrEnum):
    ALPACA = "alpaca"
    BINANCE = "binance"
    COINBASE = "coinbase"
    TRADIER = "tradier"
    OANDA = "oanda"
