"""The Binance options of ``ordersync sim``, and the engine's neutral hooks the dialect
uses: listed symbols (their tick, lot and trading hours) and the immediate cancel."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from brokers.paper import cli
from brokers.paper.engine import Listing
from brokers.paper.model import PaperStatus
from brokers.paper.state import SimConfig
from core.enums import OrderType, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[SimConfig]:
    calls: list[SimConfig] = []

    def fake_serve(config: SimConfig, **kw: Any) -> None:
        calls.append(config)

    monkeypatch.setattr(cli, "serve", fake_serve)
    return calls


def invoke(*args: str) -> Any:
    app = typer.Typer()
    app.command()(cli.sim_command)
    return CliRunner().invoke(app, list(args))


def test_binance_accounts_and_balances_reach_the_config(served: list[SimConfig]) -> None:
    result = invoke("--binance-accounts", "k1:s1,k2:s2", "--binance-balances", "usdt:50,BTC:1.5")
    assert result.exit_code == 0, result.output
    [config] = served
    assert config.binance_accounts == (("k1", "s1"), ("k2", "s2"))
    assert config.binance_balances == (("USDT", Decimal(50)), ("BTC", Decimal("1.5")))
    assert "s1" not in repr(config)


def test_bad_binance_accounts_are_refused_without_the_secret(served: list[SimConfig]) -> None:
    result = invoke("--binance-accounts", "k1:topsecret,k1:other")
    assert result.exit_code == 2
    assert "topsecret" not in result.output
    assert served == []


def test_a_listed_symbol_trades_around_the_clock_in_its_own_ticks(clock: FakeClock) -> None:
    engine = make_engine(
        clock, frozen=False, session_s=1.0, overnight_s=3600.0, fill_delay_ms=(0, 0)
    )
    engine.listings["X:ETHBTC"] = Listing(Decimal("0.03300"), Decimal("0.00001"), Decimal("0.0001"))
    engine.close_day()
    placed = engine.submit(
        order("X:ETHBTC", qty="1.5", tif=TimeInForce.GTC), acknowledged=True,
        check_buying_power=False,
    )  # fmt: skip
    clock.tick(500)
    engine.advance()
    book = engine.book("X:ETHBTC")
    assert not engine.session.is_open
    assert placed.status is PaperStatus.FILLED  # the equity close is not the pair's
    assert book.price % Decimal("0.00001") == 0
    assert abs(placed.fills[0].price - Decimal("0.033")) < Decimal("0.001")
    assert placed.fills[0].fee is None  # no Alpaca crypto fee: the dialect takes its own


def test_cancel_at_once_ends_the_order_now(clock: FakeClock) -> None:
    engine = make_engine(clock)
    engine.set_price("AAPL", Decimal(100))
    placed = engine.submit(
        order(type=OrderType.LIMIT, limit="90", tif=TimeInForce.GTC), acknowledged=True
    )
    engine.cancel_at_once(placed.id)
    assert placed.status is PaperStatus.CANCELED
    assert placed.canceled_us == engine.now_us
