"""A paper exchange process of the Tradier tests' own, over HTTP, knowing two Tradier
accounts (each token bound to its number), with a frozen market."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.brokers.tradier.paper import ACCOUNT, OTHER_ACCOUNT, OTHER_TOKEN, TOKEN
from tests.paper_exchange import PaperExchange, run_exchange


@pytest.fixture(scope="module")
def tradier_exchange_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperExchange]:
    accounts = f"{ACCOUNT}:{TOKEN},{OTHER_ACCOUNT}:{OTHER_TOKEN}"
    yield from run_exchange(
        tmp_path_factory, "tradier-exchange", 13, "--tradier-accounts", accounts
    )


@pytest.fixture
def tradier_exchange(tradier_exchange_process: PaperExchange) -> PaperExchange:
    """Emptied, without faults, the market frozen with AAPL at 200."""
    exchange = tradier_exchange_process
    exchange.reset()
    exchange.clear_faults()
    exchange.freeze_market()
    exchange.set_price("AAPL", "200")
    return exchange


@pytest.fixture
def tradier(tradier_exchange: PaperExchange) -> Iterator[httpx.Client]:
    """A raw client of the first account: its token, JSON asked for."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    with httpx.Client(base_url=tradier_exchange.base_url, headers=headers, timeout=10) as client:
        yield client
