"""One account per API key over ASGI: isolation, auth of each pair, open mode, buying power."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.paper.state import Sim, SimConfig
from core.enums import OrderType, TimeInForce
from tests.brokers.paper import (
    AUTH,
    KEY_ID,
    OTHER_AUTH,
    OTHER_KEY_ID,
    FakeClock,
    RecordingSleep,
    api_client,
    auth,
    make_sim,
    order,
)

pytestmark = pytest.mark.anyio
RESTING = {
    "symbol": "AAPL",
    "qty": "5",
    "side": "buy",
    "type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}
MARKET = {**RESTING, "type": "market", "time_in_force": "day"}
NO_BUYING_POWER = {"code": 40310000, "message": "insufficient buying power"}


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    return make_sim(clock, RecordingSleep())


async def _place(client: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    answer = await client.post("/v2/orders", json={**RESTING, **body})
    assert answer.status_code == 200, answer.text
    placed: dict[str, Any] = answer.json()
    return placed


async def test_each_key_sees_only_its_own_orders(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as mine, api_client(sim, **OTHER_AUTH) as theirs:
        own = await _place(mine, client_order_id="same-id")
        other = await _place(theirs, client_order_id="same-id")  # per-account namespace
        again = await theirs.post("/v2/orders", json={**RESTING, "client_order_id": "same-id"})
        clock.tick(100)
        answers = {
            "listed": [o["id"] for o in (await mine.get("/v2/orders")).json()],
            "their_listed": [o["id"] for o in (await theirs.get("/v2/orders")).json()],
            "by_cid": (
                await mine.get(
                    "/v2/orders:by_client_order_id", params={"client_order_id": "same-id"}
                )
            ).json()["id"],
            "cross_get": (await mine.get(f"/v2/orders/{other['id']}")).status_code,
            "cross_cancel": (await mine.delete(f"/v2/orders/{other['id']}")).status_code,
            "cancel_all": (await theirs.delete("/v2/orders")).json(),
        }
        truth = (await mine.get("/_sim/truth", params={"account": OTHER_KEY_ID})).json()

    assert own["id"] != other["id"]
    assert again.status_code == 422
    assert answers["listed"] == [own["id"]]
    assert answers["their_listed"] == [other["id"]]
    assert answers["by_cid"] == own["id"]
    assert answers["cross_get"] == answers["cross_cancel"] == 404
    assert answers["cancel_all"] == [{"id": other["id"], "status": 200}]
    assert [(o["id"], o["account"]) for o in truth["orders"]] == [(other["id"], OTHER_KEY_ID)]
    assert sim.engine.truth_by_id[own["id"]].status.value == "new"  # untouched


async def test_activities_positions_and_cash_are_per_account(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as mine, api_client(sim, **OTHER_AUTH) as theirs:
        await mine.post("/_sim/prices", json={"AAPL": "100.00"})
        bought = await _place(mine, type="market", qty="10")
        sold = await _place(theirs, type="market", side="sell", qty="3")
        clock.tick(1000)
        my_fills = (await mine.get("/v2/account/activities/FILL")).json()
        their_fills = (await theirs.get("/v2/account/activities/FILL")).json()
        my_positions = (await mine.get("/v2/positions")).json()
        their_position = await theirs.get("/v2/positions/AAPL")
        my_account = (await mine.get("/v2/account")).json()
        their_account = (await theirs.get("/v2/account")).json()
        everyone = (await mine.get("/_sim/accounts")).json()

    assert {f["order_id"] for f in my_fills} == {bought["id"]}
    assert {f["order_id"] for f in their_fills} == {sold["id"]}
    assert [(p["qty"], p["side"]) for p in my_positions] == [("10", "long")]
    assert (their_position.json()["qty"], their_position.json()["side"]) == ("3", "short")
    assert my_account["id"] != their_account["id"]
    assert my_account["account_number"] != their_account["account_number"]
    assert Decimal(my_account["cash"]) < 1_000_000 < Decimal(their_account["cash"])
    assert set(everyone) == {KEY_ID, OTHER_KEY_ID}
    assert everyone[OTHER_KEY_ID]["cash"] == their_account["cash"]


async def test_every_configured_pair_authenticates_and_no_other(clock: FakeClock) -> None:
    accounts = (("k2", "s2"), ("k3", "s3"))
    sim = make_sim(clock, RecordingSleep(), accounts=accounts)
    pairs = {
        (KEY_ID, AUTH["APCA-API-SECRET-KEY"]): 200,
        ("k2", "s2"): 200,
        ("k3", "s3"): 200,
        ("k2", "s3"): 401,  # another account's secret
        ("k4", "s2"): 401,
        (KEY_ID, ""): 401,
    }
    found = {}
    for (key, secret), _ in pairs.items():
        async with api_client(sim, **auth(key, secret)) as client:
            found[(key, secret)] = (await client.get("/v2/account")).status_code

    assert found == pairs
    assert set(sim.engine.accounts) == {KEY_ID, "k2", "k3"}


async def test_open_mode_makes_each_key_its_own_account(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), any_keys=True)
    async with (
        api_client(sim, **auth("alice", "x")) as alice,
        api_client(sim, **auth("bob", "y")) as bob,
    ):
        placed = await _place(alice, client_order_id="c")
        await _place(bob, client_order_id="c")
        listed = {
            "alice": [o["id"] for o in (await alice.get("/v2/orders")).json()],
            "bob": len((await bob.get("/v2/orders")).json()),
        }
        bulk_without = await alice.post("/_sim/orders/bulk", json={"orders": [RESTING]})
        bulk_with = await alice.post(
            "/_sim/orders/bulk", params={"account": "carol"}, json={"orders": [RESTING]}
        )
        await alice.post("/_sim/reset")
        after_reset = (await alice.get("/v2/orders")).json()

    assert listed == {"alice": [placed["id"]], "bob": 1}
    assert bulk_without.status_code == 422
    assert "account" in bulk_without.json()["message"]
    assert bulk_with.status_code == 200
    assert after_reset == []
    assert set(sim.engine.accounts) == {"alice"}  # reset drops the lazily opened ones


async def test_bulk_seeds_the_default_or_the_named_account(sim: Sim) -> None:
    async with api_client(sim) as mine, api_client(sim, **OTHER_AUTH) as theirs:
        default = await mine.post(
            "/_sim/orders/bulk", json={"orders": [{**RESTING, "client_order_id": "b"}]}
        )
        named = await mine.post(
            "/_sim/orders/bulk",
            params={"account": OTHER_KEY_ID},
            json={"orders": [{**RESTING, "client_order_id": "b"}]},
        )
        unknown = await mine.post(
            "/_sim/orders/bulk", params={"account": "nobody"}, json={"orders": [RESTING]}
        )
        mine_listed = (await mine.get("/v2/orders")).json()
        theirs_listed = (await theirs.get("/v2/orders")).json()

    assert default.status_code == named.status_code == 200
    assert unknown.status_code == 422
    assert [o["id"] for o in mine_listed] == [default.json()["orders"][0]["id"]]
    assert [o["id"] for o in theirs_listed] == [named.json()["orders"][0]["id"]]


async def test_rate_limit_windows_and_request_counts_are_per_key(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), rate_limit_per_min=2)
    async with api_client(sim) as mine, api_client(sim, **OTHER_AUTH) as theirs:
        mine_answers = [await mine.get("/v2/orders") for _ in range(3)]
        theirs_answers = [await theirs.get("/v2/orders") for _ in range(2)]
        async with api_client(sim, **auth(KEY_ID, "wrong")) as impostor:
            await impostor.get("/v2/orders")
        stats = (await mine.get("/_sim/requests")).json()

    assert [a.status_code for a in mine_answers] == [200, 200, 429]
    assert [a.status_code for a in theirs_answers] == [200, 200]
    assert theirs_answers[-1].headers["x-ratelimit-remaining"] == "0"
    assert stats["total"] == 6
    assert stats["rate_limited"] == 1
    assert stats["by_account"] == {
        KEY_ID: {"total": 3, "rate_limited": 1},
        OTHER_KEY_ID: {"total": 2, "rate_limited": 0},
    }


async def test_the_default_limit_is_alpacas_200_per_minute(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep())
    async with api_client(sim) as client:
        answers = [await client.get("/v2/clock") for _ in range(201)]
        clock.tick(60_000)
        next_window = await client.get("/v2/clock")

    assert [a.status_code for a in answers] == [200] * 200 + [429]
    assert answers[0].headers["x-ratelimit-limit"] == "200"
    assert answers[199].headers["x-ratelimit-remaining"] == "0"
    assert answers[200].json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert answers[200].headers["x-ratelimit-reset"] == str(int(clock.now.timestamp()))
    assert next_window.status_code == 200
    assert next_window.headers["x-ratelimit-remaining"] == "199"


async def test_an_order_beyond_the_buying_power_is_403_and_not_created(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), starting_cash=Decimal("10000"))
    async with api_client(sim) as client:
        await client.post("/_sim/prices", json={"AAPL": "100.00", "MSFT": "50.00"})
        fits = await client.post("/v2/orders", json={**MARKET, "qty": "60"})  # holds 6,000
        too_much = await client.post("/v2/orders", json={**MARKET, "qty": "41"})  # 4,100 > 4,000
        limit_fits = await client.post(
            "/v2/orders", json={**RESTING, "qty": "80", "limit_price": "50.00", "symbol": "MSFT"}
        )
        short = await client.post("/v2/orders", json={**MARKET, "side": "sell", "qty": "1"})
        account = (await client.get("/v2/account")).json()

    assert fits.status_code == limit_fits.status_code == 200
    assert (too_much.status_code, too_much.json()) == (403, NO_BUYING_POWER)
    assert (short.status_code, short.json()) == (403, NO_BUYING_POWER)
    assert len(sim.engine.orders) == 2
    assert (account["cash"], account["buying_power"], account["equity"]) == (
        "10000.00",
        "0.00",
        "10000.00",
    )


async def test_account_figures_follow_fills_and_positions(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), starting_cash=Decimal("10000"))
    async with api_client(sim) as client:
        await client.post("/_sim/prices", json={"AAPL": "100.00", "MSFT": "50.00"})
        long = await _place(client, qty="20", limit_price="90.00")
        short = await _place(client, symbol="MSFT", side="sell", qty="10", limit_price="50.00")
        await client.post(f"/_sim/orders/{long['id']}/fill", json={"price": "100"})
        await client.post(f"/_sim/orders/{short['id']}/fill", json={"price": "50"})
        # A sell of the long position holds nothing; beyond it, it does (at its limit).
        await _place(client, side="sell", qty="20", limit_price="500.00")
        covered = (await client.get("/v2/account")).json()
        await _place(client, side="sell", qty="1", limit_price="500.00")
        beyond = (await client.get("/v2/account")).json()
        await client.post("/_sim/prices", json={"AAPL": "110.00", "MSFT": "60.00"})
        moved = (await client.get("/v2/account")).json()

    # cash 10,000 - 2,000 + 500 = 8,500; short MSFT 10 x 50 = -500
    assert covered["cash"] == "8500.00"
    assert covered["long_market_value"] == "2000.00"
    assert covered["short_market_value"] == "-500.00"
    assert covered["equity"] == "10000.00"
    assert covered["buying_power"] == "8000.00"
    # 21 shares offered against a long of 20: one of them at 500 is held
    assert beyond["buying_power"] == "7500.00"
    # long 20 x 110 = 2,200, short 10 x 60 = -600
    assert (moved["equity"], moved["buying_power"]) == ("10100.00", "7400.00")


async def test_bulk_seeding_is_not_held_to_buying_power(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), starting_cash=Decimal("100"))
    big = {**RESTING, "qty": "1000"}
    async with api_client(sim) as client:
        seeded = await client.post("/_sim/orders/bulk", json={"orders": [big, big]})
        refused = await client.post("/v2/orders", json={**RESTING, "qty": "1"})
        account = (await client.get("/v2/account")).json()

    assert seeded.status_code == 200
    assert refused.status_code == 403
    assert account["buying_power"] == "-1900.00"


def test_secrets_stay_out_of_the_config_repr() -> None:
    config = SimConfig(key_id="k", secret_key="hush-1", accounts=(("k2", "hush-2"),))
    assert "hush" not in repr(config)
    assert config.credentials == {"k": "hush-1", "k2": "hush-2"}
    assert config.default_account == "k"


def test_reservations_are_released_however_an_order_ends(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), starting_cash=Decimal("100000"))
    engine = sim.engine
    engine.set_price("AAPL", Decimal("100.00"))
    owner = engine.account(KEY_ID)
    start = owner.buying_power(engine.price_of)

    def buy(qty: str, limit: str | None = "90.00", **kw: bool) -> str:
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
        request = order(type=kind, limit=limit, qty=qty, tif=TimeInForce.GTC)
        return engine.submit(request, account=KEY_ID, **kw).id

    canceled, rejected, forgotten = buy("10"), buy("10", reject=True), buy("10")
    partly, at_market = buy("10"), buy("5", None)
    assert owner.buying_power(engine.price_of) == start - 4 * 900 - 500
    engine.cancel(canceled)
    engine.forget(forgotten)
    fill = engine.force_fill(partly, Decimal(4), Decimal("90.00"))
    clock.tick(1000)
    engine.advance()

    assert engine.truth_by_id[canceled].status.value == "canceled"
    assert engine.truth_by_id[rejected].status.value == "rejected"
    assert engine.truth_by_id[at_market].status.value == "filled"
    spent = fill.qty * fill.price + sum(
        f.qty * f.price for f in engine.truth_by_id[at_market].fills
    )
    # only the remaining 6 of the partly filled order are still held
    assert owner.ledger.cash == start - spent
    assert owner.buying_power(engine.price_of) == start - spent - 6 * 90
    engine.cancel(partly)
    clock.tick(1000)
    engine.advance()
    assert owner.buying_power(engine.price_of) == start - spent
    assert all(
        exposure.reserved(Decimal(0), Decimal(100)) == 0 for exposure in owner.exposure.values()
    )
