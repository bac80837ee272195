"""Coinbase Advanced Trade's public endpoints, served without a JWT: the server time and the
public product list (``/market/products``), limited to 10 requests/s per client address as
Coinbase limits its public data; and the product listing List Products shares with them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from fastapi import APIRouter, Depends, Request, Response

from brokers.coinbase.paper import errors as err
from brokers.coinbase.paper.errors import CoinbaseError
from brokers.coinbase.paper.products import PRODUCTS, Product
from brokers.coinbase.paper.queries import Query
from brokers.coinbase.paper.venue import CoinbaseVenue
from brokers.paper.asgi import EXTRA_HEADERS, json_response
from brokers.paper.model import from_us
from brokers.paper.state import Sim

Json = dict[str, object]
PREFIX = "/api/v3/brokerage"
PUBLIC_REQUESTS_PER_S = 10  # per client address [3P: Coinbase's rate-limit page]
PRODUCT_TYPES = frozenset({"SPOT", "FUTURE", "UNKNOWN_PRODUCT_TYPE"})
EXPIRY_TYPES = frozenset({"UNKNOWN_CONTRACT_EXPIRY_TYPE", "EXPIRING", "PERPETUAL"})


def route_key(request: Request) -> str:
    """``METHOD /api/v3/brokerage/...`` of the route served: the stats' key."""
    template = getattr(request.scope.get("route"), "path", request.url.path)
    if not template.startswith(PREFIX):  # the route's path below its router's prefix
        template = PREFIX + template
    return f"{request.method} {template}"


def _int(query: Query, name: str) -> int:
    raw = query.one(name)
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise err.invalid(f"{name} is not an integer: {raw[:20]!r}") from None
    if value < 0:
        raise err.invalid(f"{name} must not be negative")
    return value


def list_products(query: Query, price_of: Callable[[Product], Decimal]) -> Json:
    """List Products' answer: the spot products (this venue lists no futures), filtered by
    ``product_ids``, from ``offset``, at most ``limit`` (0: all)."""
    product_type = query.one("product_type")
    if product_type is not None and product_type not in PRODUCT_TYPES:
        raise err.invalid(f"product_type: unknown value {product_type[:40]!r}")
    expiry = query.one("contract_expiry_type")
    if expiry is not None and expiry not in EXPIRY_TYPES:
        raise err.invalid(f"contract_expiry_type: unknown value {expiry[:40]!r}")
    ids = query.many("product_ids")
    limit, offset = _int(query, "limit"), _int(query, "offset")
    spot = product_type in (None, "SPOT", "UNKNOWN_PRODUCT_TYPE")
    found = [p for p in PRODUCTS.values() if spot and (not ids or p.product_id in ids)]
    page = found[offset : offset + limit] if limit else found[offset:]
    products = [p.info(price_of(p)) for p in page]
    return {"products": products, "num_products": len(products)}


def add_product_routes(router: APIRouter, path: str, venue: CoinbaseVenue) -> None:
    """List Products at ``path`` and Get Product below it: the public pair and the
    authenticated pair answer alike."""

    @router.get(path)
    async def products(request: Request) -> Response:
        return json_response(list_products(Query.parse(request.url.query), venue.price_of))

    @router.get(path + "/{product_id}")
    async def product(product_id: str) -> Response:
        found = PRODUCTS.get(product_id)
        if found is None:
            raise err.PRODUCT_NOT_FOUND
        return json_response(found.info(venue.price_of(found)))


def build_public_router(sim: Sim) -> APIRouter:
    engine, venue = sim.engine, sim.coinbase

    async def gate(request: Request) -> None:
        sim.stats.total += 1
        sim.stats.by_route[route_key(request)] += 1
        address = request.client.host if request.client else "-"
        allowed, headers = sim.coinbase_limits.hit(
            f"public:{address}", sim.now_s(), PUBLIC_REQUESTS_PER_S
        )
        extra: dict[str, str] = request.scope.setdefault(EXTRA_HEADERS, {})
        extra.update({name.lower(): value for name, value in headers.items()})
        if not allowed:
            sim.stats.rate_limited += 1
            raise CoinbaseError(429, "RESOURCE_EXHAUSTED", "Too many requests")
        engine.advance()

    public = APIRouter(dependencies=[Depends(gate)])

    @public.get("/time")
    async def server_time() -> Response:
        """Get Server Time: ``iso`` to the second, the epoch figures as strings (int64)."""
        now_us = engine.now_us
        iso = from_us(now_us).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response(
            {"iso": iso, "epochSeconds": str(now_us // 1_000_000),
             "epochMillis": str(now_us // 1_000)}
        )  # fmt: skip

    add_product_routes(public, "/market/products", venue)
    return public
