"""Coinbase's official SDK (coinbase-advanced-py), unchanged, against the paper exchange
over HTTPS (it speaks nothing else; the test's certificate is trusted through
``REQUESTS_CA_BUNDLE``): it signs its own JWTs, places, gets, lists, cancels, reads fills,
accounts and a product, and a key it does not hold is refused."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from requests.exceptions import HTTPError

from tests.brokers.coinbase.paper import KEY_NAME, OTHER_PRIVATE, PRIVATE
from tests.paper_exchange import PaperExchange

# Not a pinned dependency: coinbase-advanced-py requires websockets<14, ordersync pins 17.
RESTClient = pytest.importorskip("coinbase.rest").RESTClient
pytestmark = pytest.mark.integration


@pytest.fixture
def client(https_exchange: PaperExchange) -> Iterator[Any]:
    """Only the base URL changed: the host and port, as the SDK takes them."""
    sdk = RESTClient(
        api_key=KEY_NAME,
        api_secret=PRIVATE,
        base_url=https_exchange.base_url.removeprefix("https://"),
    )
    yield sdk
    sdk.session.close()


def test_the_sdk_places_gets_lists_cancels_and_reads_fills(
    client: Any, https_exchange: PaperExchange
) -> None:
    bought = client.market_order_buy(client_order_id="sdk-1", product_id="BTC-USD",
                                     base_size="0.002")  # fmt: skip
    order_id = bought.success_response["order_id"]
    filled = https_exchange.wait_for(
        lambda: (o := client.get_order(order_id).order).status == "FILLED" and o
    )
    resting = client.limit_order_gtc_sell(client_order_id="sdk-2", product_id="BTC-USD",
                                          base_size="0.001", limit_price="70000.00")  # fmt: skip
    again = client.limit_order_gtc_sell(client_order_id="sdk-2", product_id="BTC-USD",
                                        base_size="0.001", limit_price="70000.00")  # fmt: skip
    resting_id = resting.success_response["order_id"]
    open_orders = client.list_orders(order_status=["OPEN"], product_ids=["BTC-USD"])
    canceled = client.cancel_orders(order_ids=[resting_id])
    every = client.list_orders(limit=1)
    fills = client.get_fills(order_ids=[order_id])
    accounts = {a.currency: a for a in client.get_accounts(limit=250).accounts}
    product = client.get_product("BTC-USD")

    assert bought.success is True
    assert again.success_response["order_id"] == resting_id  # the same order, not a second
    assert (filled.filled_size, filled.order_type) == ("0.002", "MARKET")
    assert [o.order_id for o in open_orders.orders] == [resting_id]
    assert canceled.results[0].success is True
    assert client.get_order(resting_id).order.status == "CANCELLED"
    assert every.has_next is True
    assert len(every.orders) == 1
    assert every.orders[0].order_id == resting_id  # newest first
    assert sum(Decimal(f.size) for f in fills.fills) == Decimal("0.002")
    commission = sum((Decimal(f.commission) for f in fills.fills), Decimal(0))
    assert commission == Decimal(filled.total_fees)
    assert Decimal(accounts["BTC"].available_balance["value"]) == Decimal("0.002")
    assert product.base_increment == "0.00000001"


def test_the_sdk_sees_refusals_as_coinbase_gives_them(
    client: Any, https_exchange: PaperExchange
) -> None:
    refused = client.market_order_buy(client_order_id="sdk-big", product_id="BTC-USD",
                                      base_size="1000")  # fmt: skip
    stranger = RESTClient(api_key=KEY_NAME, api_secret=OTHER_PRIVATE,
                          base_url=https_exchange.base_url.removeprefix("https://"))  # fmt: skip
    with pytest.raises(HTTPError) as unauthorized:
        stranger.get_accounts()
    stranger.session.close()
    with pytest.raises(HTTPError) as missing:
        client.get_order("no-such-order")

    assert refused.success is False
    assert refused.error_response["error"] == "INSUFFICIENT_FUND"
    assert unauthorized.value.response.status_code == 401
    assert missing.value.response.status_code == 404
