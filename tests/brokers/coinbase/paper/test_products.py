"""The product listings (public ``/market/products`` and authenticated ``/products``), the
server time, the public endpoints' 10 requests/s per address, and Get Transaction Summary's
volume, fees and fee tier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.brokers.coinbase.paper import PREFIX, coinbase_client, make_coinbase_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
SPOT = ["BTC-USD", "ETH-USD", "SOL-USD", "ETH-BTC"]


async def test_the_public_product_list_needs_no_jwt_and_lists_spot_only(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        every = (await api.client.get(f"{PREFIX}/market/products")).json()
        futures = (await api.client.get(f"{PREFIX}/market/products?product_type=FUTURE")).json()
        picked = await api.client.get(
            f"{PREFIX}/market/products?product_ids=ETH-BTC&product_ids=BTC-USD"
        )
        paged = await api.client.get(f"{PREFIX}/market/products?limit=2&offset=1")
        one = await api.client.get(f"{PREFIX}/market/products/BTC-USD")
        missing = await api.client.get(f"{PREFIX}/market/products/DOGE-USD")
        bad_type = await api.client.get(f"{PREFIX}/market/products?product_type=BOND")
        bad_limit = await api.client.get(f"{PREFIX}/market/products?limit=-1")
    assert [p["product_id"] for p in every["products"]] == SPOT
    assert every["num_products"] == 4
    btc = every["products"][0]
    assert (btc["base_increment"], btc["price_increment"], btc["quote_min_size"]) == (
        "0.00000001", "0.01", "1",
    )  # fmt: skip
    assert (btc["product_type"], btc["trading_disabled"], btc["price"]) == ("SPOT", False, "60000")
    assert futures == {"products": [], "num_products": 0}
    assert [p["product_id"] for p in picked.json()["products"]] == ["BTC-USD", "ETH-BTC"]
    assert [p["product_id"] for p in paged.json()["products"]] == ["ETH-USD", "SOL-USD"]
    assert one.json() == btc
    assert (missing.status_code, missing.json()["error"]) == (404, "NOT_FOUND")
    assert (bad_type.status_code, bad_type.json()["error"]) == (400, "INVALID_ARGUMENT")
    assert "product_type" in bad_type.json()["message"]
    assert bad_limit.status_code == 400


async def test_list_products_takes_a_jwt_and_lists_what_the_public_list_does(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        unsigned = await api.client.get(f"{PREFIX}/products")
        signed = await api.ok("GET", "/products")
        public = (await api.client.get(f"{PREFIX}/market/products")).json()
    assert unsigned.status_code == 401
    assert signed == public


async def test_the_server_time_is_the_exchange_s_clock(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        clock.tick(1234)
        answer = (await api.client.get(f"{PREFIX}/time")).json()
    now = clock()
    assert answer == {
        "iso": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "epochSeconds": str(int(now.timestamp())),
        "epochMillis": str(int(now.timestamp() * 1000)),
    }


async def test_the_public_endpoints_allow_10_requests_a_second_per_address(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        answers = [await api.client.get(f"{PREFIX}/time") for _ in range(11)]
        private = await api.send("GET", "/accounts")  # the key's own 30/s, apart
        clock.tick(1000)
        later = await api.client.get(f"{PREFIX}/market/products")
        stats = (await api.client.get("/_sim/requests")).json()
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert answers[-1].json()["error"] == "RESOURCE_EXHAUSTED"
    assert answers[-1].headers["x-ratelimit-limit"] == "10"
    assert private.status_code == 200
    assert later.status_code == 200
    assert stats["by_route"]["GET /api/v3/brokerage/time"] == 11
    assert stats["rate_limited"] == 1


async def test_the_transaction_summary_gives_the_fee_tier_and_30_days_of_volume(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep, coinbase_maker_fee_bps="25", coinbase_taker_fee_bps="40")
    async with coinbase_client(sim, clock) as api:
        fresh = await api.ok("GET", "/transaction_summary")
        await api.place("bought", {"market_market_ioc": {"base_size": "0.01"}})
        traded = await api.ok("GET", "/transaction_summary")
        fills = (await api.ok("GET", "/orders/historical/fills"))["fills"]
        clock.tick(31 * 86_400_000)
        month_later = await api.ok("GET", "/transaction_summary")
        unsigned = await api.client.get(f"{PREFIX}/transaction_summary")
    assert fresh["fee_tier"] == {
        "pricing_tier": "", "usd_from": "0", "usd_to": "10000", "taker_fee_rate": "0.004",
        "maker_fee_rate": "0.0025", "aop_from": "", "aop_to": "",
    }  # fmt: skip
    assert (fresh["total_volume"], fresh["total_fees"]) == (0, 0)
    value = sum(Decimal(f["size"]) * Decimal(f["price"]) for f in fills)
    commission = sum(Decimal(f["commission"]) for f in fills)
    assert traded["total_volume"] == pytest.approx(float(value))
    assert traded["total_fees"] == pytest.approx(float(commission))
    assert commission == (value * Decimal("0.004")).quantize(Decimal("1e-10"))
    assert (month_later["total_volume"], month_later["total_fees"]) == (0, 0)
    assert unsigned.status_code == 401
