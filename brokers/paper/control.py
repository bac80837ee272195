"""The ``/_sim`` control API: ground truth, request stats, faults, prices, forced events,
the trade_updates stream's figures and connections.

No auth and no faults here: tests and operators must always be able to see and steer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import ValidationError

from brokers.alpaca.paper import crypto
from brokers.alpaca.paper.schemas import (
    ApiError,
    ForcedFill,
    MarketChange,
    describe_errors,
    invalid,
    parse_bulk_orders,
)
from brokers.alpaca.paper.wire import (
    account_json,
    activity_json,
    clock_json,
    fmt_money,
    order_json,
    truth_json,
)
from brokers.binance.paper.wire import truth_json as binance_truth_json
from brokers.coinbase.paper.auth import InvalidPublicKey, load_public_key
from brokers.coinbase.paper.wire import truth_json as coinbase_truth_json
from brokers.oanda.paper.wire import truth_json as oanda_truth_json
from brokers.paper.asgi import json_response
from brokers.paper.engine import OrderClosedError, UnknownOrderError
from brokers.paper.model import NotCancelableError, Order
from brokers.paper.state import Sim
from brokers.paper.streaming import CloseCause, Closing
from brokers.tradier.paper.wire import truth_json as tradier_truth_json

UNKNOWN_ORDER = ApiError(404, 40410000, "order not found")


def _first_repeated(values: Iterable[str]) -> str:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    raise ValueError("no value repeats")


def _balances(given: dict[str, str]) -> tuple[tuple[str, Decimal], ...]:
    parsed: list[tuple[str, Decimal]] = []
    for currency, text in given.items():
        try:
            amount = Decimal(str(text))
        except InvalidOperation:
            amount = Decimal("NaN")
        if not (currency.isalnum() and amount.is_finite() and amount >= 0):
            raise invalid(f"balances: {currency}: not an amount >= 0: {text!r}")
        parsed.append((currency.upper(), amount))
    return tuple(parsed)


def build_control_router(sim: Sim) -> APIRouter:
    router = APIRouter(prefix="/_sim")
    engine = sim.engine

    def any_order(order_id: str) -> Order:
        """Forgotten orders included: the truth outlives the exchange's memory."""
        engine.advance()
        order = engine.truth_by_id.get(order_id)
        if order is None:
            raise UNKNOWN_ORDER
        return order

    @router.get("/health")
    async def health() -> Response:
        return json_response({"ok": True})

    def bulk_account(account: str | None) -> str:
        """``?account=`` or the default account; in open mode any key, but one is needed."""
        if account is None:
            account = sim.config.default_account
            if account is None:
                raise invalid("account: required when no credentials are configured")
        elif not sim.open_mode and account not in engine.accounts:
            raise invalid(f"account: unknown key id {account!r}")
        return account

    def order_truth(order: Order) -> dict[str, object]:
        """The engine's truth; an order placed through /api/v3 adds its Binance view, one
        placed through /api/v3/brokerage its Coinbase view, one through /v1/accounts its
        Tradier view."""
        placed = sim.binance.by_engine_id.get(order.id)
        if placed is not None:
            return {**truth_json(order), **binance_truth_json(placed)}
        on_coinbase = sim.coinbase.by_order_id.get(order.id)
        if on_coinbase is not None:
            key_name = order.account.removeprefix("coinbase:")
            return {**truth_json(order), **coinbase_truth_json(on_coinbase, key_name)}
        on_tradier = sim.tradier.by_engine_id.get(order.id)
        if on_tradier is not None:
            return {**truth_json(order), **tradier_truth_json(on_tradier)}
        on_oanda = sim.oanda.by_engine_id.get(order.id)  # placed through /v3 (OANDA)
        if on_oanda is not None:
            return {**truth_json(order), **oanda_truth_json(*on_oanda)}
        return truth_json(order)

    @router.get("/truth")
    async def truth(
        status: Literal["open", "closed", "all"] = "all", account: str | None = None
    ) -> Response:
        """Every order in arrival order (``?account=`` for one key's), forgotten ones too."""
        engine.advance()
        orders = [
            order_truth(order)
            for order in engine.orders
            if (status == "all" or (status == "open") == order.is_open)
            and (account is None or order.account == account)
        ]
        return json_response({"orders": orders})

    @router.get("/truth/orders/{id}")
    async def truth_order(id: str) -> Response:
        return json_response(order_truth(any_order(id)))

    @router.get("/requests")
    async def requests() -> Response:
        return json_response(sim.stats.as_json())

    @router.get("/stream")
    async def stream_stats() -> Response:
        """Live connections and the stream's counters since start-up or the last reset;
        Binance's user data stream's under ``binance``, Coinbase's user channel's under
        ``coinbase``, Tradier's account events' under ``tradier``, OANDA's transaction stream's
        under ``oanda``."""
        return json_response({**sim.stream.as_json(), "binance": sim.binance_stream.as_json(),
                              "coinbase": sim.coinbase_stream.as_json(),
                              "tradier": sim.tradier_stream.as_json(),
                              "oanda": sim.oanda_stream.as_json()})  # fmt: skip

    @router.post("/stream/disconnect")
    async def disconnect_streams(
        code: Annotated[int | None, Query(ge=1000, le=4999)] = None,
    ) -> Response:
        """Close every live stream connection now: abruptly (no close frame: the client
        sees 1006), or with a close frame carrying ``?code=``."""
        closing = Closing(CloseCause.CONTROL, code, "disconnected by /_sim/stream/disconnect")
        hubs = (
            sim.stream,
            sim.binance_stream,
            sim.coinbase_stream,
            sim.tradier_stream,
            sim.oanda_stream,
        )
        ended = sum(hub.disconnect_all(closing) for hub in hubs)
        return json_response({"disconnected": ended})

    @router.get("/faults")
    async def get_faults() -> Response:
        return json_response(sim.faults.settings.model_dump(mode="json"))

    @router.put("/faults")
    async def put_faults(changes: Annotated[dict[str, Any], Body()]) -> Response:
        try:
            settings = sim.update_faults(changes)
        except ValidationError as exc:
            raise invalid(describe_errors(exc.errors())) from exc
        return json_response(settings.model_dump(mode="json"))

    @router.delete("/faults")
    async def clear_faults() -> Response:
        return json_response(sim.clear_faults().model_dump(mode="json"))

    def prices_json() -> dict[str, str]:
        engine.advance()
        return {symbol: fmt_money(book.price) for symbol, book in sorted(engine.books.items())}

    @router.get("/prices")
    async def get_prices() -> Response:
        return json_response(prices_json())

    @router.post("/prices")
    async def set_prices(prices: Annotated[dict[str, str | int | float], Body()]) -> Response:
        parsed: dict[str, Decimal] = {}
        for symbol, text in prices.items():
            try:
                parsed[symbol] = Decimal(str(text))
            except InvalidOperation as exc:
                raise invalid(f"{symbol}: not a decimal price: {text!r}") from exc
            if not (parsed[symbol].is_finite() and parsed[symbol] > 0):
                raise invalid(f"{symbol}: price must be positive")
        for symbol, price in parsed.items():
            engine.set_price(symbol, price)
        return json_response(prices_json())

    @router.put("/market")
    async def set_market(change: MarketChange) -> Response:
        engine.advance()
        if change.frozen is not None:
            engine.frozen = change.frozen
        if change.volatility_bps is not None:
            engine.volatility_bps = change.volatility_bps
        return json_response({"frozen": engine.frozen, "volatility_bps": engine.volatility_bps})

    @router.post("/orders/bulk")
    async def seed_orders(request: Request, account: str | None = None) -> Response:
        """Orders placed earlier, in one call: acknowledged at once, not counted as requests,
        and not held to buying power (their reservations count from now on)."""
        owner = bulk_account(account)
        requests = parse_bulk_orders(await request.body())
        for index, seeded in enumerate(requests):
            problem = crypto.order_problem(seeded) if crypto.is_pair(seeded.symbol) else None
            if problem is not None:
                raise invalid(f"orders[{index}]: {problem.message}")
        client_ids = [r.client_order_id for r in requests if r.client_order_id is not None]
        taken = {cid for cid in client_ids if engine.get_by_client_id(cid, owner) is not None}
        if taken or len(set(client_ids)) < len(client_ids):
            example = min(taken) if taken else _first_repeated(client_ids)
            raise invalid(f"client_order_id must be unique: {example!r}")
        placed = [
            engine.submit(r, account=owner, acknowledged=True, check_buying_power=False)
            for r in requests
        ]
        return json_response({"orders": [order_json(order) for order in placed]})

    @router.post("/orders/bulk/cancel")
    async def cancel_orders(ids: Annotated[list[str], Body(embed=True)]) -> Response:
        """Cancel many orders at once (what a benchmark seeded); unknown, closed or
        pending_replace ids are skipped and not reported as canceled."""
        canceled = []
        for order_id in ids:
            with contextlib.suppress(UnknownOrderError, OrderClosedError, NotCancelableError):
                canceled.append(engine.cancel(order_id).id)
        return json_response({"canceled": canceled})

    @router.post("/orders/{id}/fill")
    async def force_fill(id: str, body: ForcedFill | None = None) -> Response:
        body = body or ForcedFill()
        try:
            fill = engine.force_fill(id, body.qty, body.price)
        except UnknownOrderError as exc:
            raise UNKNOWN_ORDER from exc
        except OrderClosedError as exc:
            raise ApiError(422, 42210000, "order is closed") from exc
        except ValueError as exc:
            raise invalid(str(exc)) from exc
        return json_response({"fill": activity_json(fill), "order": truth_json(fill.order)})

    @router.post("/orders/{id}/forget")
    async def forget(id: str) -> Response:
        try:
            order = engine.forget(id)
        except UnknownOrderError as exc:
            raise UNKNOWN_ORDER from exc
        return json_response(truth_json(order))

    @router.post("/close_day")
    async def close_day() -> Response:
        """Close the session now; the overnight gap and the next session follow."""
        closed = engine.close_day()
        return json_response({"expired": closed.expired, "done_for_day": closed.done_for_day})

    @router.get("/clock")
    async def clock() -> Response:
        """``GET /v2/clock``'s answer without a request against any key's rate limit."""
        engine.advance()
        settings = engine.config
        body = {**clock_json(engine), "session_s": settings.session_s}
        return json_response({**body, "overnight_s": settings.overnight_s})

    @router.get("/accounts")
    async def accounts() -> Response:
        """Every account the exchange knows, as ``GET /v2/account`` shows it to its key."""
        engine.advance()
        return json_response(
            {key: account_json(owner, engine.price_of) for key, owner in engine.accounts.items()}
        )

    @router.post("/coinbase/accounts")
    async def register_coinbase_key(
        name: Annotated[str, Body()],
        public_key: Annotated[str, Body()],
        balances: Annotated[dict[str, str] | None, Body()] = None,
    ) -> Response:
        """Register a Coinbase API key by name and PEM public key (the exchange never sees
        the private key); a new one starts with ``balances`` (currency -> amount) or the
        configured ones. Kept across resets."""
        if not name.strip():
            raise invalid("name: must not be empty")
        try:
            key = load_public_key(public_key)
        except InvalidPublicKey as exc:
            raise invalid(f"public_key of {name!r}: {exc}") from exc
        starting = None if balances is None else _balances(balances)
        account = sim.coinbase.register(name, key, starting)
        wallet = {currency: str(amount) for currency, amount in sorted(account.wallet.items())}
        return json_response({"name": name, "balances": wallet})

    @router.post("/reset")
    async def reset() -> Response:
        sim.reset()
        return json_response({"ok": True})

    return router
