"""Our closed trade's P&L against the broker's trades its entry fills opened."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from core.enums import Side
from core.reports import BrokerTradeReport
from models.trade_pl import ClosedTrade, PnlCheck, compare_pnl

AT = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
# Bought 1000 EUR_USD at 1.08000 (fill 10), sold them at 1.08500 in two fills (20, 21).
OURS = ClosedTrade(
    trade_id="t-1", symbol="EUR_USD", side=Side.BUY, quantity=Decimal(1000),
    entry_notional=Decimal("1080.000"), exit_notional=Decimal("1085.000"),
    entry_fill_ids=("10",), exit_fill_ids=frozenset({"20", "21"}),
)  # fmt: skip


def _theirs(trade_id: str = "10", realized: str = "5.0000", closing: tuple[str, ...] = ("20", "21"),
            **changes: object) -> BrokerTradeReport:  # fmt: skip
    report = BrokerTradeReport(
        trade_id=trade_id, symbol="EUR_USD", state="CLOSED", closed=True,
        initial_quantity=Decimal(1000), realized_pnl=Decimal(realized), financing=Decimal(0),
        pnl_quantum=Decimal("0.0001"), pnl_in_quote=True, closing_fill_ids=closing,
        opened_at=AT, closed_at=AT,
    )  # fmt: skip
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


def test_realized_pl_equal_to_ours_before_fees_is_a_match() -> None:
    verdict = compare_pnl(OURS, {"10": _theirs()})
    assert verdict.check is PnlCheck.MATCH
    assert (verdict.ours, verdict.theirs) == (Decimal(5), Decimal(5))
    assert verdict.broker_trade_ids == ("10",)


def test_a_short_and_scale_in_sum_the_broker_trades_of_every_entry_fill() -> None:
    short = dataclasses.replace(OURS, side=Side.SELL, entry_fill_ids=("10", "11"),
                                exit_fill_ids=frozenset({"20"}))  # fmt: skip
    theirs = {"10": _theirs("10", "-2.0000", ("20",), initial_quantity=Decimal(400)),
              "11": _theirs("11", "-3.0000", ("20",), initial_quantity=Decimal(600))}  # fmt: skip
    verdict = compare_pnl(short, theirs)
    assert verdict.check is PnlCheck.MATCH
    assert verdict.theirs == Decimal(-5)


def test_each_closing_share_may_be_off_by_half_the_brokers_unit() -> None:
    """Two closing fills, each rounded to 0.0001: up to 0.0001 apart in all."""
    exact = dataclasses.replace(OURS, exit_notional=Decimal("1085.00009"))
    assert compare_pnl(exact, {"10": _theirs()}).check is PnlCheck.MATCH
    beyond = dataclasses.replace(OURS, exit_notional=Decimal("1085.00011"))
    assert compare_pnl(beyond, {"10": _theirs()}).check is PnlCheck.MISMATCH


def test_different_figures_are_a_mismatch_naming_both() -> None:
    verdict = compare_pnl(OURS, {"10": _theirs(realized="4.2000")})
    assert verdict.check is PnlCheck.MISMATCH
    assert (verdict.ours, verdict.theirs) == (Decimal(5), Decimal("4.2"))
    assert verdict.line() == "trade t-1 (broker trades 10): ours 5 before fees, the broker's 4.2"


def test_a_trade_closed_by_another_orders_fill_is_not_comparable() -> None:
    verdict = compare_pnl(OURS, {"10": _theirs(closing=("20", "35"))})
    assert verdict.check is PnlCheck.NOT_COMPARABLE
    assert "closed by fill 35" in verdict.reason


def test_an_entry_fill_that_closed_earlier_trades_is_not_comparable() -> None:
    assert "opened no broker trade" in compare_pnl(OURS, {}).reason
    reduced = compare_pnl(OURS, {"10": _theirs(initial_quantity=Decimal(700))})
    assert reduced.check is PnlCheck.NOT_COMPARABLE
    assert "opened 700, we entered 1000" in reduced.reason


def test_a_broker_trade_still_open_is_reported_not_alerted() -> None:
    verdict = compare_pnl(OURS, {"10": _theirs(state="OPEN", closed=False, closing=("20",))})
    assert verdict.check is PnlCheck.STILL_OPEN
    assert verdict.ours is None
    assert "still open" in verdict.line()


def test_pl_in_another_currency_unreadable_trades_and_no_fills_are_not_comparable() -> None:
    foreign = compare_pnl(OURS, {"10": _theirs(pnl_in_quote=False)})
    assert "another currency" in foreign.reason
    assert "unreadable" in compare_pnl(OURS, {}, unreadable={"10"}).reason
    bare = dataclasses.replace(OURS, entry_fill_ids=())
    assert compare_pnl(bare, {}).check is PnlCheck.NOT_COMPARABLE
