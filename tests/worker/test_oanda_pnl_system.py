"""The deep run's standing check of closed trades' realized P&L against OANDA's trades:
real workers, the paper exchange's OANDA dialect over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.ledger import TradeOutcome
from models.orders import Fill, Order
from models.trades import TradeStatus
from tests.worker.conftest import Hook, TrackingSystem, trade_status, wait_for
from tests.worker.test_binance_system import _filled
from tests.worker.test_crypto_system import _deep_run_after
from tests.worker.test_oanda_system import ACCOUNT, INSTRUMENT, _oanda_account
from tests.worker.test_reconcile_system import FAST_SWEEPS


def _start(system: TrackingSystem, hook: Hook) -> httpx.Client:
    system.exchange.freeze_market()
    system.exchange.set_price(f"oanda:{INSTRUMENT}", "1.08000")
    witness = _oanda_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    return witness


def _round_trip(system: TrackingSystem, trade_id: str) -> tuple[str, str]:
    """Buy 1000 EUR_USD and sell them as one trade; (entry fill id, exit fill id)."""
    system.place(account=ACCOUNT, client_order_id=f"{trade_id}-in", symbol=INSTRUMENT,
                 side="buy", quantity="1000", intent="ENTRY",
                 decision_id=trade_id).get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, f"{trade_id}-in"), 60, "the buy filled")
    system.exchange.set_price(f"oanda:{INSTRUMENT}", "1.08500")
    system.place(account=ACCOUNT, client_order_id=f"{trade_id}-out", symbol=INSTRUMENT,
                 side="sell", quantity="1000", intent="EXIT",
                 trade_id=trade_id).get(timeout=60)  # fmt: skip
    exit_ = wait_for(lambda: _filled(system, f"{trade_id}-out"), 60, "the sale filled")
    wait_for(lambda: trade_status(system, trade_id) is TradeStatus.CLOSED, 60, "trade closed")
    return _fill_id(system, entry), _fill_id(system, exit_)


def _fill_id(system: TrackingSystem, order: Order) -> str:
    with Session(system.engine) as session:
        (fill_id,) = session.scalars(select(Fill.broker_fill_id).where(Fill.order_id == order.id))
    return fill_id


def _compared(system: TrackingSystem) -> dict[str, Any]:
    """The stats of a deep run that started after now and compared a trade's P&L."""
    return wait_for(lambda: (s := _deep_run_after(system, datetime.now(UTC)))["pnl_compared"]
                    and s, 60, "a deep run that compared a trade's P&L")  # fmt: skip


def test_a_round_trips_pnl_equals_oandas_and_the_deep_run_says_so(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Our outcome before fees equals OANDA's realizedPL of the trade our entry opened:
    the deep run counts it compared, with nothing mismatched or left out and no alert."""
    hook = hook_factory()
    witness = _start(system, hook)
    entry_fill, exit_fill = _round_trip(system, "pl-1")
    oanda = witness.get(f"/trades/{entry_fill}").json()["trade"]
    assert oanda["state"] == "CLOSED"
    assert oanda["closingTransactionIDs"] == [exit_fill]
    stats = _compared(system)
    assert stats["pnl_compared"] == 1
    assert stats["pnl_mismatched"] == 0
    assert stats["pnl_not_comparable"] == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
    assert outcome is not None
    assert outcome.exit_notional - outcome.entry_notional == Decimal(oanda["realizedPL"]) > 0
    assert [b for b in hook.delivered if b["kind"] == "pnl_mismatch"] == []
    witness.close()


def test_a_recorded_outcome_that_disagrees_with_oanda_is_alerted_with_both_ids(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """The outcome's exit notional changed in the database by 1: the next deep run lists
    the mismatch and alerts, naming our trade, OANDA's trade and both figures."""
    hook = hook_factory()
    witness = _start(system, hook)
    entry_fill, _ = _round_trip(system, "pl-2")
    realized = Decimal(witness.get(f"/trades/{entry_fill}").json()["trade"]["realizedPL"])
    with Session(system.engine) as session:
        outcome = session.scalars(select(TradeOutcome).where(TradeOutcome.trade_id == "pl-2")).one()
        outcome.exit_notional += 1
        session.commit()
    alert = wait_for(lambda: next((b for b in hook.delivered if b["kind"] == "pnl_mismatch"),
                                  None), 60, "a pnl_mismatch alert")  # fmt: skip
    assert alert["order_ids"] == ["pl-2"]
    ours = format((realized + 1).normalize(), "f")
    assert f"trade pl-2 (broker trades {entry_fill})" in alert["detail"]
    assert f"ours {ours} before fees, the broker's {format(realized.normalize(), 'f')}" in (
        alert["detail"])  # fmt: skip
    stats = _compared(system)
    assert stats["pnl_mismatched"] == 1
    witness.close()


def test_an_exit_oanda_matched_against_an_outside_trade_is_listed_not_alerted(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """An order placed at OANDA outside ordersync opens a trade first; our exit closes it
    (first in, first out) and only reduces the trade our entry opened, which stays open:
    the run lists our trade as not compared, and nothing is alerted."""
    hook = hook_factory()
    witness = _start(system, hook)
    outside = witness.post("/orders", json={"order": {
        "type": "MARKET", "instrument": INSTRUMENT, "units": "400"}})  # fmt: skip
    assert outside.status_code == 201
    entry_fill, _ = _round_trip(system, "pl-3")
    assert witness.get(f"/trades/{entry_fill}").json()["trade"]["currentUnits"] == "400"
    stats = wait_for(lambda: (s := _deep_run_after(system, datetime.now(UTC)))[
        "pnl_not_comparable"] and s, 60, "a deep run that left the trade out")  # fmt: skip
    assert stats["pnl_compared"] == 0
    assert stats["pnl_not_comparable"] == 1
    assert [b for b in hook.delivered if b["kind"] == "pnl_mismatch"] == []
    witness.close()
