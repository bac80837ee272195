"""SIGNED endpoint security refused exactly as Binance refuses it."""

from __future__ import annotations

import pytest

from brokers.paper.state import Sim, SimConfig
from tests.brokers.binance.paper import (
    API_KEY,
    SECRET,
    Signer,
    binance_client,
    make_binance_sim,
    sign,
)
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio


def now_ms(clock: FakeClock) -> int:
    return int(clock().timestamp() * 1000)


async def test_a_signed_request_with_the_right_secret_passes(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        body = await api.ok("GET", "/api/v3/account")
    assert body["accountType"] == "SPOT"


async def test_no_api_key_is_2014_and_an_unknown_one_2015(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        query = api.query({})
        missing = await api.client.get(f"/api/v3/account?{query}")
        unknown = await api.client.get(
            f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": "nobodysKey"}
        )
    assert missing.status_code == 401
    assert missing.json() == {"code": -2014, "msg": "API-key format invalid."}
    assert unknown.status_code == 401
    assert unknown.json() == {
        "code": -2015,
        "msg": "Invalid API-key, IP, or permissions for action.",
    }


async def test_a_wrong_signature_is_1022(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        wrong = Signer(api.client, clock, API_KEY, "not-the-secret")
        answer = await wrong.send("GET", "/api/v3/account")
    assert answer.status_code == 400
    assert answer.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


async def test_missing_timestamp_or_signature_is_1102(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        headers = {"X-MBX-APIKEY": API_KEY}
        no_stamp = await api.client.get(
            f"/api/v3/account?signature={sign(SECRET, '')}", headers=headers
        )
        no_signature = await api.client.get(
            f"/api/v3/account?timestamp={now_ms(clock)}", headers=headers
        )
    assert no_stamp.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
    }
    assert no_signature.status_code == 400
    assert no_signature.json()["msg"].startswith("Mandatory parameter 'signature'")


@pytest.mark.parametrize(
    ("offset_ms", "window", "msg"),
    [
        (-5001, None, "Timestamp for this request is outside of the recvWindow."),
        (-5000, None, None),
        (-59_000, 60_000, None),
        (1000, None, "Timestamp for this request was 1000ms ahead of the server's time."),
        (999, None, None),
    ],
)
async def test_the_timestamp_must_sit_in_the_recv_window(
    clock: FakeClock, sleep: RecordingSleep, offset_ms: int, window: int | None, msg: str | None
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        params = {} if window is None else {"recvWindow": window}
        query = api.query(params, timestamp=now_ms(clock) + offset_ms)
        answer = await api.client.get(f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": API_KEY})
    if msg is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400
        assert answer.json() == {"code": -1021, "msg": msg}


async def test_recv_window_above_60000_is_refused(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        answer = await api.send("GET", "/api/v3/account", recvWindow=60001)
    assert answer.status_code == 400
    assert answer.json()["code"] == -1131


async def test_a_post_body_is_signed_after_the_query_string(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """rest-api.md example 3: totalParams is the query string then the body."""
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
        body = f"quantity=0.01&price=80000&recvWindow=5000&timestamp={now_ms(clock)}"
        signed = f"{body}&signature={sign(SECRET, query + body)}"
        headers = {
            "X-MBX-APIKEY": API_KEY,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        good = await api.client.post(f"/api/v3/order?{query}", content=signed, headers=headers)
        bad_body = f"{body}&signature={sign(SECRET, body)}"
        bad = await api.client.post(f"/api/v3/order?{query}", content=bad_body, headers=headers)
    assert good.status_code == 200, good.text
    assert good.json()["status"] == "NEW"
    assert bad.json()["code"] == -1022


async def test_public_endpoints_need_no_key(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        ping = await api.client.get("/api/v3/ping")
        server = await api.client.get("/api/v3/time")
    assert ping.json() == {}
    assert server.json() == {"serverTime": now_ms(clock)}


async def test_open_mode_takes_any_key_signed_with_itself(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """Without configured Binance keys every key is an account, its secret the key."""
    sim = Sim(SimConfig(seed=1), clock=clock, sleep=sleep)
    async with binance_client(sim, clock) as api:
        itself = await Signer(api.client, clock, "anyKey1", "anyKey1").send(
            "GET", "/api/v3/account"
        )
        other = await Signer(api.client, clock, "anyKey1", "other").send("GET", "/api/v3/account")
    assert itself.status_code == 200
    assert other.json()["code"] == -1022


async def test_a_parameter_sent_twice_or_not_read_is_refused(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        twice = await api.client.get(
            "/api/v3/openOrders?symbol=BTCUSDT&symbol=ETHUSDT",
            headers={"X-MBX-APIKEY": API_KEY},
        )
        unread = await api.send("GET", "/api/v3/account", colour="blue")
    assert twice.json() == {"code": -1101, "msg": "Duplicate values for a parameter detected."}
    assert "X-MBX-USED-WEIGHT-1M" in twice.headers
    assert unread.json() == {
        "code": -1104,
        "msg": "Not all sent parameters were read; read '2' parameter(s) but was sent '3'.",
    }
