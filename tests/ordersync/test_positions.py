"""Positions and trades as the API and ``ordersync positions`` read them: by account, with
lifecycle text, as tables and as JSON; an unknown account is said so, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.enums import BrokerKind, Intent, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from core.enums import ReportSource as Source
from core.reports import FeeReport, FillReport
from models import migrate
from models.accounts import UnknownAccount
from models.db import make_engine
from models.fees import record_fee
from models.orders import Account, Order
from models.repository import apply_to_order
from models.trades import TradeStatus
from ordersync.cli import app
from ordersync.positions import positions, trades
from ordersync.settings import get_settings
from tests.models.factories import T0, at, fill

D = Decimal
DASH = "\u2013"
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def _order(session: Session, account: Account, ref: str, symbol: str, side: Side,
           quantity: str, **extra: Any) -> Order:  # fmt: skip
    order = Order(
        account_id=account.id, broker=BrokerKind.ALPACA, client_order_id=f"c-{ref}",
        broker_order_id=f"b-{ref}", origin=OrderOrigin.PLACED, symbol=symbol, side=side,
        order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=D(quantity),
        status=OrderStatus.NEW, created_at=T0, updated_at=T0, **extra,
    )  # fmt: skip
    session.add(order)
    session.flush()
    return order


def _fill(session: Session, order: Order, quantity: str, price: str, second: float) -> None:
    report: FillReport = fill(
        f"f-{order.broker_order_id}-{second}",
        quantity,
        price,
        broker_order_id=order.broker_order_id or "",
        seconds=second,
    )
    apply_to_order(session, order, report, now=at(second), source=Source.MONITOR)
    session.flush()


def seed(session: Session) -> None:
    """alpha: long 10 AAPL in an open trade, short 5 MSFT without intent; beta: a closed
    round trip in AAPL (flat, realized 20)."""
    alpha, beta = (
        Account(
            name=n,
            broker=BrokerKind.ALPACA,
            base_url="http://x",
            credentials_env="X",
            created_at=T0,
        )
        for n in ("alpha", "beta")
    )
    session.add_all([alpha, beta])
    session.flush()
    long = _order(session, alpha, "a1", "AAPL", Side.BUY, "10", intent=Intent.ENTRY,
                  decision_id="dec-a")  # fmt: skip
    _fill(session, long, "10", "100", 1)
    _fill(session, _order(session, alpha, "a2", "MSFT", Side.SELL, "5"), "5", "50", 2)
    entry = _order(session, beta, "b1", "AAPL", Side.BUY, "4", intent=Intent.ENTRY,
                   trade_id="t-beta")  # fmt: skip
    _fill(session, entry, "4", "10", 3)
    exit_ = _order(session, beta, "b2", "AAPL", Side.SELL, "4", intent=Intent.EXIT,
                   trade_id="t-beta")  # fmt: skip
    _fill(session, exit_, "4", "15", 4)
    record_fee(session, beta.id, FeeReport("20261121000000000::cash", None, None, None,
                                           D("0.37"), "USD", at(5)), now=at(6))  # fmt: skip


def test_positions_by_account_and_symbol(db_session: Session) -> None:
    seed(db_session)
    rows = [(p.account, p.symbol, p.quantity, p.average_cost, p.realized_pnl)
            for p in positions(db_session)]  # fmt: skip
    assert rows == [
        ("alpha", "AAPL", D(10), D(100), D(0)),
        ("alpha", "MSFT", D(-5), D(50), D(0)),
        ("beta", "AAPL", D(0), None, D(20)),
    ]
    assert [p.symbol for p in positions(db_session, "beta")] == ["AAPL"]
    with pytest.raises(UnknownAccount):
        positions(db_session, "nobody")


def test_trades_carry_their_lifecycle_and_outcome(db_session: Session) -> None:
    seed(db_session)
    [beta] = trades(db_session, "beta")
    assert (beta.trade_id, beta.status, beta.realized_pnl) == ("t-beta", TradeStatus.CLOSED, 20)
    assert beta.lifecycle == f"Trade CLOSED {DASH} 4 exited {DASH} realized PnL 20"
    [alpha] = trades(db_session, status=TradeStatus.OPEN)
    assert (alpha.trade_id, alpha.open_quantity, alpha.entry_average_price) == ("dec-a", 10, 100)
    assert alpha.lifecycle == f"Trade OPEN {DASH} long 10"
    assert alpha.realized_pnl is None


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite file with the seed, where ``get_settings()`` points."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        seed(session)
        session.commit()
    engine.dispose()
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["positions", *args], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_the_command_prints_positions_and_open_trades(database: str) -> None:
    code, out, err = invoke()
    assert code == 0, err
    lines = out.splitlines()
    [msft] = [line for line in lines if "MSFT" in line]
    assert "alpha" in msft
    assert "-5" in msft
    assert any("beta" in line and "20" in line for line in lines)  # the flat, realized one
    [open_trade] = [line for line in lines if "dec-a" in line]
    assert f"Trade OPEN {DASH} long 10" in open_trade
    [cash_fee] = [line for line in lines if "(cash)" in line]
    assert "beta" in cash_fee
    assert "0.37 USD" in cash_fee


def test_the_command_as_json_for_one_account(database: str) -> None:
    code, out, err = invoke("--account", "alpha", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert [(p["symbol"], p["quantity"], p["average_cost"]) for p in document["positions"]] == [
        ("AAPL", "10", "100"), ("MSFT", "-5", "50"),
    ]  # fmt: skip
    [trade] = document["open_trades"]
    assert (trade["trade_id"], trade["open_quantity"], trade["status"]) == ("dec-a", "10", "OPEN")
    assert trade["opened_at"] == at(1).isoformat()
    assert document["fees"] == []  # beta's only
    code, out, err = invoke("--account", "beta", "--json")
    [fee] = json.loads(out)["fees"]
    assert (fee["symbol"], fee["amount"], fee["trades"]) == (None, "0.37", [])


def test_the_command_says_when_the_account_is_unknown(database: str) -> None:
    code, _, err = invoke("--account", "nobody")
    assert code == 2
    assert "unknown account 'nobody'" in err
