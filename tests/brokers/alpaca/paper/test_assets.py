"""Assets and the market calendar: the pure modules, then ``/v2/assets`` and ``/v2/calendar``."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from brokers.alpaca.paper.assets import (
    EXCHANGES,
    UNIVERSE,
    asset_for,
    asset_json,
    find_asset,
    is_crypto,
    list_assets,
)
from brokers.alpaca.paper.calendar import day_json
from brokers.paper import market_calendar as cal
from brokers.paper.model import asset_id
from brokers.paper.state import Sim
from tests.brokers.paper import (
    AUTH,
    OTHER_AUTH,
    FakeClock,
    RecordingSleep,
    api_client,
    make_sim,
)

CRYPTO_PAIRS = {
    "BTC/USD", "ETH/USD", "SOL/USD", "LTC/USD", "DOGE/USD", "USDT/USD", "BTC/USDT", "ETH/BTC",
}  # fmt: skip
ASSET_FIELDS = {
    "id", "class", "exchange", "symbol", "name", "status", "tradable", "marginable",
    "maintenance_margin_requirement", "margin_requirement_long", "margin_requirement_short",
    "shortable", "easy_to_borrow", "fractionable", "attributes",
}  # fmt: skip
CRYPTO_FIELDS = {"min_order_size", "min_trade_increment", "price_increment"}
NOT_FOUND_CODE = 40410000


def days(*isos: str) -> set[date]:
    return {date.fromisoformat(iso) for iso in isos}


# --- the market calendar -------------------------------------------------------------------

# The NYSE's published full-day closures.
NYSE_HOLIDAYS = {
    2025: days(
        "2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26",
        "2025-06-19", "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25",
    ),
    2026: days(
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19",
        "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25",
    ),
    2027: days(
        "2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18",
        "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24",
    ),
}  # fmt: skip
NYSE_EARLY_CLOSES = {
    2025: days("2025-07-03", "2025-11-28", "2025-12-24"),
    2026: days("2026-11-27", "2026-12-24"),
    2027: days("2027-11-26"),
}


@pytest.mark.parametrize("year", sorted(NYSE_HOLIDAYS))
def test_holidays_match_the_nyse_calendar(year: int) -> None:
    assert set(cal.holidays(year)) == NYSE_HOLIDAYS[year]
    for day in NYSE_HOLIDAYS[year]:
        assert not cal.is_trading_day(day)
        assert cal.market_day(day) is None


@pytest.mark.parametrize("year", sorted(NYSE_EARLY_CLOSES))
def test_early_closes_match_the_nyse_calendar(year: int) -> None:
    assert set(cal.early_closes(year)) == NYSE_EARLY_CLOSES[year]
    for day in NYSE_EARLY_CLOSES[year]:
        found = cal.market_day(day)
        assert found is not None
        assert (found.close, found.session_close, found.is_early_close) == (
            time(13, 0),
            time(17, 0),
            True,
        )


def test_holidays_on_a_weekend_are_observed_on_the_nearest_weekday() -> None:
    assert cal.holidays(2026)[date(2026, 7, 3)] == "Independence Day"  # the 4th: a Saturday
    assert cal.holidays(2027)[date(2027, 12, 24)] == "Christmas Day"  # the 25th: a Saturday
    assert cal.holidays(2027)[date(2027, 7, 5)] == "Independence Day"  # the 4th: a Sunday
    assert cal.holidays(2023)[date(2023, 1, 2)] == "New Year's Day"  # the 1st: a Sunday


def test_a_new_year_on_a_saturday_closes_no_friday() -> None:
    # 2022-01-01 was a Saturday: the NYSE traded the whole of Friday 2021-12-31.
    last_of_2021 = cal.market_day(date(2021, 12, 31))
    assert last_of_2021 is not None
    assert (last_of_2021.open, last_of_2021.close) == (time(9, 30), time(16, 0))
    assert last_of_2021.settlement_date == date(2022, 1, 3)
    assert not any(day.month == 1 and day.day <= 2 for day in cal.holidays(2022))
    # 2028 too: Friday 2027-12-31 is a trading day.
    assert cal.is_trading_day(date(2027, 12, 31))


def test_holidays_start_when_the_exchange_first_closed_for_them() -> None:
    assert cal.is_trading_day(date(1997, 1, 20))  # third Monday; MLK day closes from 1998
    assert not cal.is_trading_day(date(1998, 1, 19))
    assert cal.is_trading_day(date(2021, 6, 18))  # Juneteenth closes from 2022
    assert not cal.is_trading_day(date(2022, 6, 20))  # 2022's fell on a Sunday


@pytest.mark.parametrize(
    ("year", "sunday"),
    [
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),  # the latest possible
        (2285, date(2285, 3, 22)),  # the earliest possible
    ],
)
def test_easter(year: int, sunday: date) -> None:
    assert cal.easter(year) == sunday


def test_settlement_is_the_next_trading_day() -> None:
    assert cal.settlement_date(date(2026, 3, 2)) == date(2026, 3, 3)
    assert cal.settlement_date(date(2026, 3, 6)) == date(2026, 3, 9)  # over a weekend
    assert cal.settlement_date(date(2026, 4, 2)) == date(2026, 4, 6)  # over Good Friday
    assert cal.settlement_date(date(2026, 7, 2)) == date(2026, 7, 6)  # over July 3 observed


def test_market_days_skip_weekends_and_holidays_and_know_the_hours() -> None:
    week = cal.market_days(date(2026, 11, 23), date(2026, 11, 29))

    assert [d.day for d in week] == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
    ]
    friday = week[-1]
    assert friday.open_at == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    assert friday.close_at == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    summer = cal.market_day(date(2026, 6, 1))
    assert summer is not None
    assert summer.open_at == datetime(2026, 6, 1, 13, 30, tzinfo=UTC)  # EDT
    assert cal.market_days(date(2026, 3, 3), date(2026, 3, 2)) == []
    assert cal.market_days(date(2026, 3, 7), date(2026, 3, 8)) == []


def test_unscheduled_closures_are_listed() -> None:
    assert cal.holidays(2025)[date(2025, 1, 9)].startswith("National Day of Mourning")
    assert not cal.is_trading_day(date(2012, 10, 29))
    assert cal.is_trading_day(date(2012, 10, 31))


def test_day_json_is_alpacas_shape() -> None:
    found = cal.market_day(date(2026, 11, 27))
    assert found is not None
    assert day_json(found) == {
        "date": "2026-11-27",
        "open": "09:30",
        "close": "13:00",
        "session_open": "0400",
        "session_close": "1700",
        "settlement_date": "2026-11-30",
    }


# --- the assets ----------------------------------------------------------------------------


def test_the_universe_has_common_equities_and_crypto_pairs() -> None:
    equities = [a for a in UNIVERSE if a.asset_class == "us_equity"]
    crypto = [a for a in UNIVERSE if a.asset_class == "crypto"]
    symbols = {a.symbol for a in UNIVERSE}

    assert len(equities) >= 20
    assert {"AAPL", "MSFT", "SPY", "QQQ", "TSLA", "AMZN", "GOOGL", "NVDA", "META"} <= symbols
    assert {a.symbol for a in crypto} == CRYPTO_PAIRS
    assert len(symbols) == len(UNIVERSE)
    assert {a.exchange for a in equities} == {"NASDAQ", "NYSE", "ARCA"}
    assert {a.exchange for a in crypto} == {"CRYPTO"}
    assert {a.exchange for a in UNIVERSE} <= EXCHANGES
    assert any(not a.fractionable for a in equities)
    assert any(not a.shortable for a in equities)
    assert any(a.shortable and not a.easy_to_borrow for a in equities)
    by_symbol = {a.symbol: a for a in UNIVERSE}
    assert (by_symbol["AAPL"].exchange, by_symbol["SPY"].exchange) == ("NASDAQ", "ARCA")
    assert by_symbol["JPM"].exchange == "NYSE"


def test_crypto_is_cash_only_with_exact_increments() -> None:
    for asset in UNIVERSE:
        if asset.asset_class == "crypto":
            flags = (asset.shortable, asset.marginable, asset.easy_to_borrow)
            assert flags == (False, False, False)
            assert (asset.fractionable, asset.tradable) == (True, True)
            for size in (asset.min_order_size, asset.min_trade_increment, asset.price_increment):
                assert isinstance(size, Decimal)
                assert size > 0
        else:
            assert asset.min_order_size is None
            assert asset.price_increment is None


def test_crypto_symbols_are_found_in_either_symbology() -> None:
    pair = asset_for("BTC/USD")
    assert pair is not None
    assert asset_for("BTCUSD") is pair
    assert asset_for("ETHBTC") is asset_for("ETH/BTC")
    assert (is_crypto("BTC/USD"), is_crypto("BTCUSD"), is_crypto("XRP/USD")) == (True,) * 3
    assert (is_crypto("AAPL"), is_crypto("ZZZZ"), is_crypto("BTC")) == (False,) * 3


def test_ids_are_the_ones_orders_and_positions_carry() -> None:
    aapl = asset_for("AAPL")
    assert aapl is not None
    assert aapl.id == asset_id("AAPL")
    assert find_asset(asset_id("AAPL")) is aapl
    assert find_asset(asset_id("BTC/USD")) is asset_for("BTC/USD")
    assert find_asset(str(uuid.uuid4())) is None


def test_symbols_outside_the_list_are_synthetic_equities() -> None:
    synthetic = asset_for("ZZZZ")
    assert synthetic is not None
    assert (synthetic.asset_class, synthetic.exchange, synthetic.symbol) == (
        "us_equity",
        "NASDAQ",
        "ZZZZ",
    )
    assert (synthetic.tradable, synthetic.fractionable, synthetic.status) == (True, True, "active")
    assert synthetic.id == asset_id("ZZZZ")
    assert asset_for("BRK.C") is not None
    # Not well formed: unknown unless the exchange traded it.
    assert asset_for("not-a-ticker") is None
    assert asset_for("TOOLONG") is None
    traded = asset_for("not-a-ticker", traded={"not-a-ticker"})
    assert traded is not None
    assert traded.asset_class == "us_equity"
    assert find_asset(asset_id("not-a-ticker"), traded={"not-a-ticker"}) == traded
    # An unlisted pair is unknown until traded; then it is crypto, as is_crypto says.
    assert asset_for("XRP/USD") is None
    xrp = asset_for("XRP/USD", traded={"XRP/USD"})
    assert xrp is not None
    assert (xrp.asset_class, xrp.exchange, xrp.shortable) == ("crypto", "CRYPTO", False)


def test_list_assets_adds_traded_symbols_and_filters() -> None:
    everything = list_assets(["ZZZZ", "AAPL", "BTCUSD", "lower"])
    symbols = [a.symbol for a in everything]

    assert len(symbols) == len(set(symbols)) == len(UNIVERSE) + 2  # ZZZZ and lower
    assert {"ZZZZ", "lower"} <= set(symbols)
    keys = [(a.asset_class, a.exchange, a.symbol) for a in everything]
    assert keys == sorted(keys)
    crypto = list_assets(asset_class="crypto")
    assert {a.symbol for a in crypto} == CRYPTO_PAIRS
    arca = list_assets(exchange="ARCA")
    assert arca
    assert all(a.exchange == "ARCA" for a in arca)
    assert {a.symbol for a in list_assets(attributes=["has_options"])} == {
        a.symbol for a in UNIVERSE if a.asset_class == "us_equity"
    }
    assert list_assets(attributes=["ipo"]) == []


def test_asset_json_sends_sizes_as_decimal_strings() -> None:
    btc, aapl = asset_for("BTC/USD"), asset_for("AAPL")
    assert btc is not None
    assert aapl is not None
    crypto, equity = asset_json(btc), asset_json(aapl)

    assert set(crypto) == ASSET_FIELDS | CRYPTO_FIELDS
    assert set(equity) == ASSET_FIELDS
    assert crypto["min_trade_increment"] == "0.000000001"
    assert all(isinstance(crypto[f], str) for f in CRYPTO_FIELDS)
    assert (crypto["class"], crypto["exchange"], crypto["symbol"]) == (
        "crypto",
        "CRYPTO",
        "BTC/USD",
    )
    assert (equity["class"], equity["status"], equity["id"]) == ("us_equity", "active", aapl.id)
    assert equity["maintenance_margin_requirement"] == 30
    assert equity["margin_requirement_long"] == "30"
    assert crypto["margin_requirement_short"] == "100"


# --- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    return make_sim(clock, RecordingSleep())


@pytest.mark.anyio
async def test_get_assets_lists_equities_by_default_and_crypto_on_request(sim: Sim) -> None:
    async with api_client(sim) as client:
        placed = await client.post(
            "/v2/orders",
            json={"symbol": "WXYZ", "qty": "1", "side": "buy", "type": "market",
                  "time_in_force": "day"},
        )  # fmt: skip
        equities = await client.get("/v2/assets")
        crypto = await client.get("/v2/assets", params={"asset_class": "crypto"})
        active_arca = await client.get(
            "/v2/assets", params={"status": "active", "exchange": "ARCA"}
        )
        inactive = await client.get("/v2/assets", params={"status": "inactive"})
        optioned = await client.get("/v2/assets", params={"attributes": "ipo,has_options"})

    assert placed.status_code == 200
    assert equities.status_code == 200
    listed = {a["symbol"]: a for a in equities.json()}
    assert {a["class"] for a in listed.values()} == {"us_equity"}
    assert {"AAPL", "SPY", "WXYZ"} <= set(listed)
    assert listed["WXYZ"]["id"] == placed.json()["asset_id"]
    assert (listed["WXYZ"]["exchange"], listed["WXYZ"]["fractionable"]) == ("NASDAQ", True)
    assert all(set(a) == ASSET_FIELDS for a in listed.values())
    pairs = crypto.json()
    assert {a["symbol"] for a in pairs} == CRYPTO_PAIRS
    assert all(set(a) == ASSET_FIELDS | CRYPTO_FIELDS for a in pairs)
    assert all(Decimal(a["min_order_size"]) > 0 for a in pairs)
    assert {a["exchange"] for a in active_arca.json()} == {"ARCA"}
    assert inactive.json() == []
    assert "WXYZ" not in {a["symbol"] for a in optioned.json()}
    assert "AAPL" in {a["symbol"] for a in optioned.json()}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [
        {"asset_class": "bonds"},
        {"asset_class": "CRYPTO"},
        {"status": "delisted"},
        {"exchange": "LSE"},
        {"attributes": "has_options,shiny"},
    ],
)
async def test_get_assets_refuses_unknown_values(sim: Sim, params: dict[str, str]) -> None:
    async with api_client(sim) as client:
        answer = await client.get("/v2/assets", params=params)

    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == 42210000
    assert next(iter(params)) in body["message"]


@pytest.mark.anyio
async def test_get_one_asset_by_symbol_either_crypto_form_or_id(sim: Sim) -> None:
    async with api_client(sim) as client:
        aapl = await client.get("/v2/assets/AAPL")
        slash = await client.get("/v2/assets/BTC/USD")
        encoded = await client.get("/v2/assets/BTC%2FUSD")
        compact = await client.get("/v2/assets/BTCUSD")
        by_id = await client.get(f"/v2/assets/{asset_id('ETH/USD')}")
        synthetic = await client.get("/v2/assets/ZZZZ")

    assert aapl.status_code == 200
    assert (aapl.json()["symbol"], aapl.json()["exchange"]) == ("AAPL", "NASDAQ")
    assert aapl.json()["id"] == asset_id("AAPL")
    assert slash.json() == encoded.json() == compact.json()
    assert (slash.json()["symbol"], slash.json()["class"]) == ("BTC/USD", "crypto")
    assert slash.json()["price_increment"] == "1"
    assert by_id.json()["symbol"] == "ETH/USD"
    assert (synthetic.status_code, synthetic.json()["class"]) == (200, "us_equity")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "unknown", ["NOT-A-TICKER", "XRP/USD", "1a2b3c4d-0000-4000-8000-000000000000"]
)
async def test_unknown_assets_are_404(sim: Sim, unknown: str) -> None:
    async with api_client(sim) as client:
        answer = await client.get(f"/v2/assets/{unknown}")

    assert (answer.status_code, answer.json()) == (
        404,
        {"code": NOT_FOUND_CODE, "message": f"asset not found for {unknown}"},
    )


@pytest.mark.anyio
async def test_get_calendar_answers_alpacas_shape(sim: Sim) -> None:
    async with api_client(sim) as client:
        thanksgiving = await client.get(
            "/v2/calendar", params={"start": "2026-11-25", "end": "2026-11-30"}
        )
        easter = await client.get(
            "/v2/calendar", params={"start": "2026-04-02", "end": "2026-04-06"}
        )
        single = await client.get(
            "/v2/calendar", params={"start": "2026-11-27", "end": "2026-11-27"}
        )
        stamped = await client.get(
            "/v2/calendar", params={"start": "2026-11-27T09:00:00-05:00", "end": "2026-11-27"}
        )
        backwards = await client.get(
            "/v2/calendar", params={"start": "2026-03-10", "end": "2026-03-02"}
        )
        settling = await client.get(
            "/v2/calendar",
            params={"start": "2026-04-06", "end": "2026-04-06", "date_type": "SETTLEMENT"},
        )

    assert thanksgiving.status_code == 200
    assert thanksgiving.json() == [
        {"date": "2026-11-25", "open": "09:30", "close": "16:00", "session_open": "0400",
         "session_close": "2000", "settlement_date": "2026-11-27"},
        {"date": "2026-11-27", "open": "09:30", "close": "13:00", "session_open": "0400",
         "session_close": "1700", "settlement_date": "2026-11-30"},
        {"date": "2026-11-30", "open": "09:30", "close": "16:00", "session_open": "0400",
         "session_close": "2000", "settlement_date": "2026-12-01"},
    ]  # fmt: skip
    assert [d["date"] for d in easter.json()] == ["2026-04-02", "2026-04-06"]
    assert single.json() == stamped.json() == [thanksgiving.json()[1]]
    assert backwards.json() == []
    assert [d["date"] for d in settling.json()] == ["2026-04-02"]


@pytest.mark.anyio
async def test_get_calendar_without_dates_spans_alpacas_years(sim: Sim) -> None:
    async with api_client(sim) as client:
        everything = (await client.get("/v2/calendar")).json()
        from_2029 = (await client.get("/v2/calendar", params={"start": "2029-12-01"})).json()

    assert everything[0]["date"] == "1970-01-02"
    assert everything[-1]["date"] == "2029-12-31"
    assert from_2029 == everything[-len(from_2029) :]
    assert from_2029[0]["date"] == "2029-12-03"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-02-30"},
        {"end": "tomorrow"},
        {"start": "2026-1-5"},
        {"start": "2026-11-27T25:00:00Z"},
    ],
)
async def test_get_calendar_refuses_bad_dates(sim: Sim, params: dict[str, str]) -> None:
    async with api_client(sim) as client:
        answer = await client.get("/v2/calendar", params=params)

    assert answer.status_code == 422
    body = answer.json()
    assert set(body) == {"code", "message"}
    assert next(iter(params)) in body["message"]


@pytest.mark.anyio
async def test_get_calendar_refuses_an_unknown_date_type(sim: Sim) -> None:
    async with api_client(sim) as client:
        answer = await client.get("/v2/calendar", params={"date_type": "SOMETIMES"})
    assert (answer.status_code, answer.json()["code"]) == (422, 42210000)


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/v2/assets", "/v2/assets/BTC/USD", "/v2/calendar"])
async def test_every_account_may_ask_and_strangers_may_not(sim: Sim, path: str) -> None:
    params = {"start": "2026-03-02", "end": "2026-03-06"} if path == "/v2/calendar" else {}
    async with api_client(sim, **AUTH) as mine, api_client(sim, **OTHER_AUTH) as theirs:
        first = await mine.get(path, params=params)
        second = await theirs.get(path, params=params)
    async with api_client(sim, **{**AUTH, "APCA-API-SECRET-KEY": "guess"}) as impostor:
        refused = await impostor.get(path, params=params)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "x-ratelimit-remaining" in first.headers
    assert (refused.status_code, refused.json()["code"]) == (401, 40110000)
    template = "/v2/assets/{symbol_or_asset_id:path}" if path.count("/") > 2 else path
    assert sim.stats.by_route[f"GET {template}"] == 3
