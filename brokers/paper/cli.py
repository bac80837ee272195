"""``ordersync sim``: start the paper exchange with its market model and faults preset."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from brokers.alpaca.paper.schemas import describe_errors
from brokers.coinbase.paper.auth import InvalidPublicKey, load_public_key
from brokers.paper.engine import EngineConfig
from brokers.paper.faults import DEFAULT_RATE_LIMIT_PER_MIN, DEFAULT_SESSION_S, FaultSettings
from brokers.paper.server import serve
from brokers.paper.state import SimConfig

_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

Probability = Annotated[float, typer.Option(min=0.0, max=1.0)]


def parse_range_ms(text: str, option: str) -> tuple[int, int]:
    """``"0-300"`` -> (0, 300); a single number means a fixed value."""
    match = _RANGE.fullmatch(text)
    if match is None:
        raise typer.BadParameter(
            f"expected MIN-MAX in ms, e.g. 0-300, got {text!r}", None, None, option
        )
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low > high:
        raise typer.BadParameter(f"min {low} is above max {high}", None, None, option)
    return low, high


def parse_accounts(
    text: str | None, key_id: str | None, option: str = "--accounts"
) -> tuple[tuple[str, str], ...]:
    """``"KEY:SECRET,KEY2:SECRET2"`` -> pairs; errors name the entry, never its secret."""
    if not text or not text.strip():
        return ()
    pairs: list[tuple[str, str]] = []
    seen = {key_id} if key_id is not None else set()
    for number, entry in enumerate(text.split(","), start=1):
        key, colon, secret = entry.strip().partition(":")
        if not (colon and key and secret):
            raise typer.BadParameter(
                f"entry {number} is not KEY:SECRET with both parts non-empty",
                None,
                None,
                option,
            )
        if key in seen:
            raise typer.BadParameter(
                f"entry {number}: key id {key!r} is configured twice", None, None, option
            )
        seen.add(key)
        pairs.append((key, secret))
    return tuple(pairs)


def parse_money(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not (value.is_finite() and value >= 0):
        raise typer.BadParameter(f"expected an amount >= 0, got {text!r}", None, None, option)
    return value


def parse_balances(
    text: str, option: str = "--binance-balances"
) -> tuple[tuple[str, Decimal], ...]:
    """``"USDT:100000,BNB:10"`` -> (asset, amount) pairs."""
    balances: list[tuple[str, Decimal]] = []
    for entry in text.split(","):
        asset, colon, amount = entry.strip().partition(":")
        if not (colon and asset.isalnum()):
            raise typer.BadParameter(f"{entry.strip()!r} is not ASSET:AMOUNT", None, None, option)
        balances.append((asset.upper(), parse_money(amount, option)))
    return tuple(balances)


def parse_coinbase_keys(text: str | None) -> tuple[tuple[str, str], ...]:
    """``"NAME=public.pem[,NAME2=other.pem]"`` -> (key name, PEM public key) pairs; errors
    name the entry and file."""
    option = "--coinbase-accounts"
    if not text or not text.strip():
        return ()
    keys: list[tuple[str, str]] = []
    for number, entry in enumerate(text.split(","), start=1):
        name, equals, path = entry.strip().partition("=")
        if not (equals and name and path):
            raise typer.BadParameter(f"entry {number} is not NAME=PEM_FILE", None, None, option)
        if name in dict(keys):
            raise typer.BadParameter(f"entry {number}: {name!r} is given twice", None, None, option)
        try:
            pem = Path(path).read_text()
            load_public_key(pem)
        except OSError as exc:
            raise typer.BadParameter(
                f"entry {number} ({name!r}): cannot read {path}: {exc.strerror}", None, None, option
            ) from None
        except InvalidPublicKey as exc:
            raise typer.BadParameter(
                f"entry {number} ({name!r}): {path}: {exc}", None, None, option
            ) from None
        keys.append((name, pem))
    return tuple(keys)


def sim_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")
    ] = 8765,
    key_id: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_KEY_ID",
            help="The main account's APCA-API-KEY-ID (the default for /_sim calls); with "
            "neither it nor --accounts, every non-empty key id is an account of its own.",
        ),
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_SECRET_KEY",
            help="The --key-id account's APCA-API-SECRET-KEY; unset accepts any non-empty one.",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_ACCOUNTS",
            help="More accounts, KEY:SECRET[,KEY:SECRET...]; each key id is its own account.",
            show_default=False,
        ),
    ] = None,
    binance_accounts: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_BINANCE_ACCOUNTS",
            help="Binance (/api/v3) accounts, API_KEY:SECRET[,...]; none: any key is an "
            "account signing with the key itself as its HMAC secret.",
            show_default=False,
        ),
    ] = None,
    binance_balances: Annotated[
        str, typer.Option(help="What each Binance account starts with, ASSET:AMOUNT[,...].")
    ] = "USDT:100000,BNB:10",
    coinbase_accounts: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_COINBASE_ACCOUNTS",
            help="Coinbase (/api/v3/brokerage) API keys, NAME=PUBLIC_KEY_PEM_FILE[,...]; more "
            "can be registered at POST /_sim/coinbase/accounts.",
            show_default=False,
        ),
    ] = None,
    coinbase_balances: Annotated[
        str, typer.Option(help="What each Coinbase key starts with, CURRENCY:AMOUNT[,...].")
    ] = "USD:100000",
    tradier_accounts: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_TRADIER_ACCOUNTS",
            help="Tradier (/v1/accounts) accounts, NUMBER:ACCESS_TOKEN[,...], each token "
            "bound to its account; none: any token opens any account number.",
            show_default=False,
        ),
    ] = None,
    oanda_accounts: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_OANDA_ACCOUNTS",
            help="OANDA (/v3) accounts, ACCOUNT_ID:TOKEN[,...] (a token may open several); "
            "none: any bearer token opens any account id.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for prices, fills and faults; unset is random.")
    ] = None,
    starting_cash: Annotated[
        str, typer.Option(help="Cash each account starts with (and after a reset).")
    ] = "1000000",
    session_s: Annotated[
        float,
        typer.Option(min=0.0, help="Length of a trading session in s; 0: never closes."),
    ] = DEFAULT_SESSION_S,
    overnight_s: Annotated[
        float, typer.Option(min=0.0, help="Closed time between two sessions, in s.")
    ] = 0.0,
    fill_delay_ms: Annotated[
        str, typer.Option(help="MIN-MAX ms from acknowledgement to the last fill.")
    ] = "0-300",
    partial_fill_probability: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Chance an order fills in 2-4 partial fills."),
    ] = 0.3,
    tick_ms: Annotated[int, typer.Option(min=1, help="Price tick interval in ms.")] = 100,
    volatility_bps: Annotated[
        float, typer.Option(min=0.0, help="Std. dev. of one price tick, in basis points.")
    ] = 5.0,
    rate_limit_per_min: Annotated[
        int, typer.Option(min=0, help="Requests per key per 60 s window; 0 disables.")
    ] = DEFAULT_RATE_LIMIT_PER_MIN,
    latency_ms: Annotated[
        str, typer.Option(help="MIN-MAX ms of latency added to every /v2 request.")
    ] = "0-0",
    p_429: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance of an injected 429.")
    ] = 0.0,
    p_5xx: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance of an injected 503.")
    ] = 0.0,
    p_timeout: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance a request waits --timeout-s first.")
    ] = 0.0,
    timeout_s: Annotated[
        float, typer.Option(min=0.0, help="How long timeout and lost-response faults wait.")
    ] = 10.0,
    p_lose_response: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Chance a placement is made but its answer is lost (504)."
        ),
    ] = 0.0,
    p_late_activity: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Chance a fill's activity is listed only later (see next)."
        ),
    ] = 0.0,
    late_activity_ms: Annotated[
        str, typer.Option(help="MIN-MAX ms a late activity stays unlisted.")
    ] = "1000-5000",
    p_same_timestamp: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Chance an order takes its account's previous order's times."
        ),
    ] = 0.0,
    log_level: Annotated[
        str, typer.Option(help=f"Uvicorn log level: {', '.join(_LOG_LEVELS)}.")
    ] = "warning",
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with this PEM certificate (clients that only speak "
            "https, such as coinbase-advanced-py); needs --ssl-keyfile."
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The certificate's PEM private key.")
    ] = None,
) -> None:
    """Run the paper exchange: an HTTP server speaking the Alpaca Trading API v2, Binance
    Spot, Coinbase Advanced Trade and OANDA v20."""
    if log_level.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(_LOG_LEVELS)}", None, None, "--log-level")
    pairs = parse_accounts(accounts, key_id)
    if pairs and key_id is None and secret_key is not None:
        raise typer.BadParameter(
            "needs --key-id when --accounts is given", None, None, "--secret-key"
        )
    cash = parse_money(starting_cash, "--starting-cash")
    binance_pairs = parse_accounts(binance_accounts, None, "--binance-accounts")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("give both --ssl-certfile and --ssl-keyfile, or neither")
    try:
        faults = FaultSettings(
            latency_ms=parse_range_ms(latency_ms, "--latency-ms"),
            fill_delay_ms=parse_range_ms(fill_delay_ms, "--fill-delay-ms"),
            partial_fill_probability=partial_fill_probability,
            rate_limit_per_min=rate_limit_per_min,
            p_429=p_429,
            p_5xx=p_5xx,
            p_timeout=p_timeout,
            p_lose_response=p_lose_response,
            timeout_s=timeout_s,
            p_late_activity=p_late_activity,
            late_activity_ms=parse_range_ms(late_activity_ms, "--late-activity-ms"),
            p_same_timestamp=p_same_timestamp,
            session_s=session_s,
            overnight_s=overnight_s,
        )
    except ValidationError as exc:
        raise typer.BadParameter(describe_errors(exc.errors())) from exc
    config = SimConfig(
        key_id=key_id,
        secret_key=secret_key,
        accounts=pairs,
        binance_accounts=binance_pairs,
        binance_balances=parse_balances(binance_balances),
        coinbase_accounts=parse_coinbase_keys(coinbase_accounts),
        coinbase_balances=parse_balances(coinbase_balances, "--coinbase-balances"),
        tradier_accounts=parse_accounts(tradier_accounts, None, "--tradier-accounts"),
        oanda_accounts=parse_accounts(oanda_accounts, None, "--oanda-accounts"),
        seed=seed,
        engine=EngineConfig(tick_ms=tick_ms, volatility_bps=volatility_bps, starting_cash=cash),
        faults=faults,
    )

    def announce(url: str) -> None:
        typer.echo(
            "ordersync paper exchange serving Alpaca API v2, Binance Spot /api/v3, "
            "Coinbase Advanced Trade /api/v3/brokerage, Tradier /v1/accounts and OANDA v20 /v3 "
            f"at {url}",
            err=False,
        )

    tls = None if ssl_certfile is None or ssl_keyfile is None else (ssl_certfile, ssl_keyfile)
    serve(config, host=host, port=port, log_level=log_level.lower(), announce=announce, tls=tls)
