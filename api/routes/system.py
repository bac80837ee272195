"""Health, readiness, the accounts a key sees, and the monitoring status."""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.auth import Principal, admin_only, principal
from api.deps import ApiState, Cached, api_state, db_session
from api.reads import account_latency
from api.schemas import AccountOut, HealthOut
from models.orders import Account
from ordersync.metrics.readings import queue_depths
from ordersync.redis_url import resolve_broker_url
from ordersync.status import to_json
from worker.stale import Thresholds, classify, counts, load_candidates

router = APIRouter(tags=["system"])
STATUS_TTL_S = 2.0
SWEEP_FIELDS = frozenset({"last_started", "last_finished", "last_run_ok", "last_ok", "runs",
                          "failures", "last_duration_s", "deadman"})  # fmt: skip
_STATUS: dict[int, Cached[dict[str, Any]]] = {}
_STATUS_LOCK = threading.Lock()
State = Annotated[ApiState, Depends(api_state)]
Who = Annotated[Principal, Depends(principal)]


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(admin_only)])
def metrics(request: Request) -> Response:
    """The exporter's gauges (every account's), for the admin key only; collected in a
    worker thread, never on the event loop."""
    registry, _ = api_state(request).metrics()
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, summary="Database, Redis and transport answer",
            responses={503: {"model": HealthOut}})  # fmt: skip
def readyz(state: State) -> Any:
    checks: dict[str, str] = {}
    try:
        with state.ctx.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # any driver error means not ready
        checks["database"] = f"error: {type(error).__name__}"
    try:
        state.ctx.redis.ping()
        checks["redis"] = "ok"
    except redis.RedisError as error:
        checks["redis"] = f"error: {type(error).__name__}"
    try:
        # This app's transport (its settings' broker, else its Redis), not the one the
        # process's Celery app was configured with from the environment.
        queue_depths(state.settings.transport_is_amqp(), resolve_broker_url(state.settings))
        checks["transport"] = "ok"
    except Exception as error:  # kombu's errors have no common base
        checks["transport"] = f"error: {type(error).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
    return body if ok else JSONResponse(body.model_dump(), status_code=503)


@router.get("/api/v1/accounts", response_model=list[AccountOut], tags=["accounts"],
            summary="The accounts this key reaches")  # fmt: skip
def accounts(who: Who, session: Annotated[Session, Depends(db_session)]) -> list[AccountOut]:
    query = select(Account).order_by(Account.name)
    if not who.is_admin:
        query = query.where(Account.id == who.account_id)
    return [AccountOut.model_validate(a) for a in session.scalars(query)]


@router.get("/api/v1/status", response_model=dict[str, Any],
            summary="Monitoring: sweeps, stale orders, queues, workers, budgets")  # fmt: skip
def status(who: Who, state: State) -> dict[str, Any]:
    """Read at most every ``STATUS_TTL_S`` however many ask (it counts every order)."""
    document = copy.deepcopy(_status_document(state))
    if who.is_admin:
        return document
    return _scoped(document, state, who)


def _status_document(state: ApiState) -> dict[str, Any]:
    with _STATUS_LOCK:
        cached = _STATUS.get(id(state))
        if cached is None:

            def read() -> dict[str, Any]:
                return to_json(state.status_reader().read(state.now()))

            cached = _STATUS[id(state)] = Cached(STATUS_TTL_S, read)
    return cached()


def _scoped(document: dict[str, Any], state: ApiState, who: Principal) -> dict[str, Any]:
    """An account key sees the system's health and its own account, not others'."""
    name = who.account_name
    if document.get("orders"):
        by_account = document["orders"]["by_account"]
        document["orders"] = {"by_account": {k: v for k, v in by_account.items() if k == name},
                              "fill_gaps": {k: v for k, v in document["orders"]["fill_gaps"]
                                            .items() if k == name}}  # fmt: skip
    if document.get("budgets") is not None:
        document["budgets"] = [b for b in document["budgets"] if b["account"] == name]
    if document.get("streams") is not None:
        document["streams"] = {k: v for k, v in document["streams"].items() if k == name}
    if document.get("stale") is not None:  # the account's own, classified now
        now, thresholds = state.now(), Thresholds.of(state.settings)
        with state.ctx.sessions() as session:
            candidates = load_candidates(session, now, thresholds, who.account_id)
        classes = classify(candidates, now, thresholds)
        document["stale"] = {
            "at": now.isoformat(),
            "counts": counts(classes),
            "order_ids": {k: list(c.order_ids) for k, c in classes.items()},
        }
    document["webhooks"] = {}
    # Sweeps run for every account: their state, not their errors and counts, which name
    # other accounts.
    document["sweeps"] = {name: {k: v for k, v in sweep.items() if k in SWEEP_FIELDS}
                          for name, sweep in document.get("sweeps", {}).items()}  # fmt: skip
    document["errors"] = dict.fromkeys(document.get("errors", {}), "unavailable")
    with state.ctx.sessions() as session:
        window_s = state.settings.status_latency_window_s
        latency = account_latency(session, who.account_id or "", state.now(), window_s)
    document["detection_latency"] = asdict(latency.summary)
    return document
