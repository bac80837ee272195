"""A paper exchange process of the Binance tests' own: configured Binance keys, and its
engine's random draws apart from the session's exchange, whose Alpaca tests expect the
fills their seed gives them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.brokers.binance.paper import BINANCE_KEY, BINANCE_SECRET
from tests.paper_exchange import PaperExchange, run_exchange


@pytest.fixture(scope="module")
def binance_exchange_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperExchange]:
    accounts = f"{BINANCE_KEY}:{BINANCE_SECRET}"
    yield from run_exchange(tmp_path_factory, "binance-exchange", 7, "--binance-accounts", accounts)


@pytest.fixture
def binance_exchange(binance_exchange_process: PaperExchange) -> PaperExchange:
    """Emptied and without faults before each test."""
    binance_exchange_process.reset()
    binance_exchange_process.clear_faults()
    return binance_exchange_process
