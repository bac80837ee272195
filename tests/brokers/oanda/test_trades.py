"""OANDA Trade objects -> BrokerTradeReport, on the documented shapes (payloads.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.oanda import trades
from brokers.values import ParseError
from tests.brokers.oanda import payloads as p


def test_a_closed_trade_carries_its_realized_pl_closing_fills_and_close_time() -> None:
    report = trades.parse_trade(p.CLOSED_TRADE, "USD")
    assert report.trade_id == "2313"
    assert report.symbol == "EUR_USD"
    assert report.closed
    assert report.state == "CLOSED"
    assert report.realized_pnl == Decimal("-0.1455")
    assert report.pnl_quantum == Decimal("0.0001")
    assert report.financing == Decimal(0)
    assert report.initial_quantity == Decimal(100)
    assert report.closing_fill_ids == ("2317",)
    assert report.pnl_in_quote
    assert report.opened_at == datetime(2016, 10, 28, 14, 27, 19, 11002, tzinfo=UTC)
    assert report.closed_at == datetime(2016, 10, 28, 15, 11, 58, 23004, tzinfo=UTC)


def test_open_trades_have_no_closing_fills_and_a_foreign_quote_is_flagged() -> None:
    dax, eur_usd = (trades.parse_trade(t, "USD") for t in p.TRADES["trades"])
    assert not eur_usd.closed
    assert eur_usd.closed_at is None
    assert eur_usd.closing_fill_ids == ()
    assert eur_usd.pnl_in_quote
    assert not dax.pnl_in_quote  # DE30_EUR is priced in EUR, the P&L stated in USD


@pytest.mark.parametrize(
    ("field", "value"),
    [("state", "GONE"), ("realizedPL", 1.5), ("initialUnits", "0"), ("id", "abc"),
     ("closingTransactionIDs", [2317]), ("closeTime", None), ("openTime", "yesterday")],
)  # fmt: skip
def test_an_unreadable_trade_is_a_parse_error(field: str, value: object) -> None:
    raw = copy.deepcopy(p.CLOSED_TRADE)
    raw[field] = value
    with pytest.raises(ParseError):
        trades.parse_trade(raw, "USD")


@pytest.mark.parametrize(("written", "unit"), [("-0.1455", "0.0001"), ("12.35", "0.01"),
                                                ("12", "0.01"), ("12.0", "0.01")])  # fmt: skip
def test_a_pnl_is_compared_to_the_unit_it_is_written_to_never_coarser_than_a_cent(
    written: str, unit: str
) -> None:
    assert trades.quantum(Decimal(written)) == Decimal(unit)
