"""``ordersync sim``: start the paper exchange with its market model and faults preset."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from pydantic import ValidationError

from brokers.paper.engine import EngineConfig
from brokers.paper.faults import FaultSettings
from brokers.paper.schemas import describe_errors
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


def sim_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")
    ] = 8765,
    key_id: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_KEY_ID",
            help="Required APCA-API-KEY-ID; unset accepts any non-empty key.",
        ),
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(
            envvar="ORDERSYNC_SIM_SECRET_KEY",
            help="Required APCA-API-SECRET-KEY; unset accepts any non-empty secret.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for prices, fills and faults; unset is random.")
    ] = None,
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
    ] = 10_000,
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
    log_level: Annotated[
        str, typer.Option(help=f"Uvicorn log level: {', '.join(_LOG_LEVELS)}.")
    ] = "warning",
) -> None:
    """Run the paper exchange: an HTTP server speaking the Alpaca Trading API v2."""
    if log_level.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(_LOG_LEVELS)}", None, None, "--log-level")
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
        )
    except ValidationError as exc:
        raise typer.BadParameter(describe_errors(exc.errors())) from exc
    config = SimConfig(
        key_id=key_id,
        secret_key=secret_key,
        seed=seed,
        engine=EngineConfig(tick_ms=tick_ms, volatility_bps=volatility_bps),
        faults=faults,
    )

    def announce(url: str) -> None:
        typer.echo(f"ordersync paper exchange serving Alpaca API v2 at {url}", err=False)

    serve(config, host=host, port=port, log_level=log_level.lower(), announce=announce)
