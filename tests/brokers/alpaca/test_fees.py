"""Alpaca's CFEE activities (crypto fees posted apart from the fills) as FeeReports, on the
documented shapes: a coin fee is a negative qty of a ``BTCUSD``-style position at its USD
price, a dollar fee a negative net_amount; an unreadable one is kept apart, not guessed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from brokers.alpaca import parse as alpaca_parse
from brokers.alpaca.adapter import AlpacaBroker
from brokers.base import BrokerAdapter
from brokers.errors import MalformedResponse

BASE = "https://paper-api.alpaca.test"
# Alpaca's documented CFEE activity ("Crypto fees" in its activities documentation).
DOC_COIN_FEE: dict[str, Any] = {
    "id": "20220812000000000::5be9b6a5-5ad2-4e08-9d3c-b1b4b2e8b3a7",
    "activity_type": "CFEE",
    "date": "2022-08-12",
    "net_amount": "0",
    "description": "Coin Pair Transaction Fee (Non USD)",
    "symbol": "ETHUSD",
    "qty": "-0.000195",
    "price": "1884.5",
    "status": "executed",
}
DOC_USD_FEE: dict[str, Any] = {
    "id": "20220812000000000::0a1c4b7e-2f1d-4a55-9bd0-2a6b1cc0e0f1",
    "activity_type": "CFEE",
    "date": "2022-08-12",
    "net_amount": "-0.37",
    "description": "Coin Pair Transaction Fee (USD)",
    "status": "executed",
}


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_mocked=True)


@pytest.fixture
def broker(router: respx.Router) -> Iterator[AlpacaBroker]:
    client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(router.handler))
    yield AlpacaBroker(client, key_id="k", secret_key="s", sleep=lambda _: None)
    client.close()


def test_a_coin_fee_names_the_pair_its_position_trades_as() -> None:
    fee = alpaca_parse.parse_fee(DOC_COIN_FEE)
    assert (fee.broker_fee_id, fee.symbol) == (DOC_COIN_FEE["id"], "ETH/USD")
    assert (fee.quantity, fee.price) == (Decimal("0.000195"), Decimal("1884.5"))
    assert fee.amount == Decimal("0.3674775")
    # No time but the New York date: the fee counts from the start of that day.
    assert fee.posted_at == datetime(2022, 8, 12, 4, tzinfo=UTC)
    assert fee.description == "Coin Pair Transaction Fee (Non USD)"


def test_a_dollar_fee_names_no_symbol() -> None:
    fee = alpaca_parse.parse_fee({**DOC_USD_FEE, "created_at": "2022-08-12T20:01:02Z"})
    assert (fee.symbol, fee.quantity, fee.price) == (None, None, None)
    assert (fee.amount, fee.currency) == (Decimal("0.37"), "USD")
    assert fee.posted_at == datetime(2022, 8, 12, 20, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"qty": "0.000195"}, "qty is 0.000195, expected < 0"),
        ({"price": None}, "price is missing"),
        ({"price": "-1"}, "price is -1"),
        ({"id": None}, "id is"),
        ({"activity_type": "FILL"}, "expected CFEE"),
        ({"date": "12/08/2022"}, "not YYYY-MM-DD"),
        ({"qty": None, "symbol": None, "net_amount": "0"}, "net_amount is 0"),
        ({"qty": "abc"}, "qty is not a decimal"),
    ],
)
def test_an_unreadable_fee_says_why(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(alpaca_parse.ParseError, match=reason):
        alpaca_parse.parse_fee({**DOC_COIN_FEE, **change})


def test_list_fees_reads_cfee_oldest_first_and_keeps_unreadable_ones_apart(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    bad = {**DOC_COIN_FEE, "id": "20220812000000000::bad", "qty": "1"}
    route = router.get("/v2/account/activities/CFEE").respond(
        200, json=[DOC_COIN_FEE, bad, DOC_USD_FEE]
    )
    page = broker.list_fees(after=datetime(2022, 8, 12, tzinfo=UTC), page_size=3)
    assert [f.broker_fee_id for f in page.items] == [DOC_COIN_FEE["id"], DOC_USD_FEE["id"]]
    assert [m.reason for m in page.malformed] == ["qty is 1, expected < 0 (a fee taken)"]
    assert page.next_token == DOC_USD_FEE["id"]  # a full page: there may be more
    assert dict(route.calls.last.request.url.params) == {
        "direction": "asc", "page_size": "3", "after": "2022-08-12T00:00:00.000000Z",
    }  # fmt: skip
    router.get("/v2/account/activities/CFEE").respond(200, json=[{"x": 1}])
    with pytest.raises(MalformedResponse, match="no activity on a full page has an id"):
        broker.list_fees(page_size=1, page_token=DOC_USD_FEE["id"])


def test_only_a_broker_that_posts_fees_apart_lists_them() -> None:
    assert AlpacaBroker.lists_fees
    assert not BrokerAdapter.lists_fees
