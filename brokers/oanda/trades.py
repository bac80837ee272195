"""OANDA v20 Trade objects -> BrokerTradeReport, with no I/O.

Field names are OANDA's (oanda/v20-python ``trade.Trade``): ``id`` (the id of the ORDER_FILL
that opened it), ``instrument``, ``state`` (OPEN, CLOSED, CLOSE_WHEN_TRADEABLE),
``initialUnits`` (signed), ``realizedPL`` and ``financing`` (home currency), ``openTime``,
``closeTime`` (CLOSED only) and ``closingTransactionIDs``. ``realizedPL`` is the P&L of the
closed part alone: financing is its own field, and commission is charged on the fill.
"""

from __future__ import annotations

from decimal import Decimal

from brokers.oanda.rules import quote_currency
from brokers.values import (
    as_list,
    as_object,
    decimal,
    describe,
    fail,
    loads,
    text,
    when,
)
from core.reports import BrokerTradeReport

STATES = frozenset({"OPEN", "CLOSED", "CLOSE_WHEN_TRADEABLE"})
PNL_QUANTUM_CAP = Decimal("0.01")  # the coarsest unit a P&L is compared to


def quantum(value: Decimal) -> Decimal:
    """The unit an amount is written to: ``-0.1455`` -> 0.0001 (OANDA writes home currency
    amounts to 4 places in every payload seen [U: no documented rule]), never coarser than a
    cent: an amount written ``12`` may be exactly 12, and must not hide a mismatch."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        fail(f"{value} has no decimal exponent")
    return min(Decimal(1).scaleb(min(exponent, 0)), PNL_QUANTUM_CAP)


def _closing_ids(data: dict[str, object]) -> tuple[str, ...]:
    raw = data.get("closingTransactionIDs")
    if raw is None:
        return ()
    ids = as_list(raw, "closingTransactionIDs")
    for item in ids:
        if not isinstance(item, str) or not item.isdigit():
            fail(f"closingTransactionIDs holds {describe(item)}, expected a transaction id")
    return tuple(str(item) for item in ids)


def parse_trade(value: object, home: str) -> BrokerTradeReport:
    """One Trade object; ``home`` is the account's currency, that of its P&L figures."""
    data = as_object(value, "trade")
    state = text(data, "state")
    if state not in STATES:
        fail(f"unknown trade state {state!r}")
    trade_id = text(data, "id")
    if not trade_id.isdigit():
        fail(f"trade id {trade_id!r} is not a transaction id")
    instrument = text(data, "instrument")
    initial = decimal(data, "initialUnits")
    if initial == 0:
        fail("initialUnits is 0, expected a signed non-zero number")
    realized = decimal(data, "realizedPL")
    closed = state == "CLOSED"
    if closed and data.get("closeTime") is None:
        fail("a CLOSED trade without closeTime")
    return BrokerTradeReport(
        trade_id=trade_id,
        symbol=instrument,
        state=state,
        closed=closed,
        initial_quantity=abs(initial),
        realized_pnl=realized,
        financing=decimal(data, "financing") if data.get("financing") is not None
        else Decimal(0),
        pnl_quantum=quantum(realized),
        pnl_in_quote=quote_currency(instrument) == home,
        closing_fill_ids=_closing_ids(data),
        opened_at=when(data, "openTime"),
        closed_at=when(data, "closeTime") if closed else None,
        raw=dict(data),
    )  # fmt: skip


def trades(body: bytes) -> list[object]:
    """``GET /trades`` -> its raw trades (newest first, as OANDA lists them)."""
    return as_list(as_object(loads(body), "body").get("trades"), "trades")
