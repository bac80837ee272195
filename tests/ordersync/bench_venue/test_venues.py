"""Which venues the benchmark has, and what it refuses to do at one (yet)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from core.enums import BrokerKind
from ordersync.bench import bench_venue
from ordersync.bench_venue import VENUES, VenueRefused, venue_for
from ordersync.exchange_keys import exchange_accounts_env


def test_each_broker_with_a_paper_dialect_has_a_venue_and_another_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for kind in BrokerKind:
        assert venue_for(kind).kind is kind
    monkeypatch.delitem(VENUES, BrokerKind.OANDA)
    with pytest.raises(VenueRefused, match="no venue for 'oanda'"):
        venue_for(BrokerKind.OANDA)


def test_binance_streams_and_its_sweep_is_refused_with_what_to_do() -> None:
    assert bench_venue(BrokerKind.BINANCE, stream=True, sweep_orders=0).streams
    with pytest.raises(typer.BadParameter, match="seeds Alpaca orders only"):
        bench_venue(BrokerKind.BINANCE, stream=False, sweep_orders=10)
    assert bench_venue(BrokerKind.ALPACA, stream=True, sweep_orders=10).streams


def test_coinbase_streams_and_its_sweep_is_refused_by_name() -> None:
    assert bench_venue(BrokerKind.COINBASE, stream=True, sweep_orders=0).streams
    with pytest.raises(typer.BadParameter, match="seeds Alpaca orders only, not coinbase"):
        bench_venue(BrokerKind.COINBASE, stream=False, sweep_orders=10)


def test_the_exchange_gets_the_key_pairs_as_accounts_of_the_venue() -> None:
    pairs = [("k1", "s1"), ("k2", "s2")]
    assert exchange_accounts_env(BrokerKind.BINANCE, pairs, Path("unused")) == {
        "ORDERSYNC_SIM_BINANCE_ACCOUNTS": "k1:s1,k2:s2"
    }
    assert exchange_accounts_env(BrokerKind.ALPACA, pairs, Path("unused")) == {
        "ORDERSYNC_SIM_KEY_ID": "k1", "ORDERSYNC_SIM_SECRET_KEY": "s1",
        "ORDERSYNC_SIM_ACCOUNTS": "k2:s2",
    }  # fmt: skip
