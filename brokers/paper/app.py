"""The paper exchange as an ASGI app: Alpaca's /v2 surface, its trade_updates stream at
/stream, Binance Spot's /api/v3 and its WebSocket API's user data stream at /ws-api/v3,
Coinbase Advanced Trade's /api/v3/brokerage and its user WebSocket at /ws/user, Tradier's
/v1/accounts and its account events WebSocket at /v1/accounts/events, OANDA v20's /v3,
and the /_sim control API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from brokers.alpaca.paper.errors import api_error_handler, validation_error_handler
from brokers.alpaca.paper.routes import build_v2_router
from brokers.alpaca.paper.schemas import ApiError
from brokers.alpaca.paper.stream import build_stream_router
from brokers.binance.paper.errors import BinanceError, binance_error_handler
from brokers.binance.paper.routes import build_binance_router
from brokers.binance.paper.stream import build_ws_api_router
from brokers.coinbase.paper.errors import CoinbaseError, coinbase_error_handler
from brokers.coinbase.paper.routes import build_coinbase_router
from brokers.coinbase.paper.stream import build_user_stream_router
from brokers.oanda.paper.errors import OandaError, oanda_error_handler
from brokers.oanda.paper.routes import build_oanda_router
from brokers.paper.asgi import ExtraHeaders, http_error_handler, unexpected_error_handler
from brokers.paper.control import build_control_router
from brokers.paper.state import Sim
from brokers.tradier.paper.errors import TradierError, tradier_error_handler
from brokers.tradier.paper.events import build_events_router
from brokers.tradier.paper.routes import build_tradier_router

logger = logging.getLogger(__name__)
MAX_IDLE = timedelta(milliseconds=100)
MIN_IDLE = timedelta(milliseconds=1)


async def drive(sim: Sim) -> None:
    """Keep the engine current between requests so no request pays for a long idle gap, and
    so stream clients hear of fills without anyone making a request.

    Correctness of the REST answers never depends on this loop: every request advances the
    engine first.
    """
    while True:
        try:
            sim.engine.advance()
        except Exception:  # a bug; requests will hit it too, but keep the clock running
            logger.exception("paper exchange: advancing the engine failed")
        due = sim.engine.next_due()
        idle = MAX_IDLE if due is None else min(MAX_IDLE, max(MIN_IDLE, due - sim.clock()))
        await asyncio.sleep(idle.total_seconds())


def create_app(sim: Sim) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        driver = asyncio.create_task(drive(sim))
        try:
            yield
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver

    app = FastAPI(
        title="ordersync paper exchange",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sim = sim
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(BinanceError, binance_error_handler)
    app.add_exception_handler(CoinbaseError, coinbase_error_handler)
    app.add_exception_handler(TradierError, tradier_error_handler)
    app.add_exception_handler(OandaError, oanda_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.add_middleware(ExtraHeaders)
    app.include_router(build_v2_router(sim))
    app.include_router(build_binance_router(sim))
    app.include_router(build_coinbase_router(sim))
    app.include_router(build_tradier_router(sim))
    app.include_router(build_oanda_router(sim))
    app.include_router(build_control_router(sim))
    app.include_router(build_stream_router(sim))
    app.include_router(build_ws_api_router(sim))
    app.include_router(build_user_stream_router(sim))
    app.include_router(build_events_router(sim))
    return app
