"""A paper exchange process of the OANDA tests' own, knowing the accounts in ``__init__``
(two bound to one token, a third to another), and an ordersync adapter for the first."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from brokers.oanda.adapter import OandaBroker
from tests.brokers.oanda.paper import ACCOUNT, ACCOUNTS_OPTION, TOKEN
from tests.paper_exchange import PaperExchange, run_exchange


@pytest.fixture(scope="module")
def oanda_exchange_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperExchange]:
    yield from run_exchange(
        tmp_path_factory, "oanda-exchange", 13, "--oanda-accounts", ACCOUNTS_OPTION
    )


@pytest.fixture
def oanda_exchange(oanda_exchange_process: PaperExchange) -> PaperExchange:
    """Emptied, without faults, its market frozen at EUR_USD 1.08000 and USD_JPY 150.000."""
    exchange = oanda_exchange_process
    exchange.reset()
    exchange.clear_faults()
    exchange.freeze_market()
    exchange.set_price("oanda:EUR_USD", "1.08000")
    exchange.set_price("oanda:USD_JPY", "150.000")
    return exchange


@pytest.fixture
def api(oanda_exchange: PaperExchange) -> Iterator[httpx.Client]:
    """Raw HTTP to the first account's ``/v3`` with its token."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Datetime-Format": "RFC3339"}
    with httpx.Client(base_url=f"{oanda_exchange.base_url}/v3/accounts/{ACCOUNT}",
                      headers=headers, timeout=10) as client:  # fmt: skip
        yield client


@pytest.fixture
def broker(oanda_exchange: PaperExchange) -> Iterator[OandaBroker]:
    adapter = OandaBroker.from_url(
        oanda_exchange.base_url, account_id=ACCOUNT, token=TOKEN, max_retry_wait_s=0.5
    )
    try:
        yield adapter
    finally:
        adapter.close()
