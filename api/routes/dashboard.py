"""What the dashboard shows beyond the orders: where the other tools are, and the fill
detection latency of the last hour."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import Principal, account_scope, principal
from api.deps import ApiState, api_state, db_session
from api.reads import LATENCY_POINTS_MAX, account_latency
from models.orders import Account

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


class Links(BaseModel):
    """Where the operations tools are (null: not configured)."""

    metrics: str | None = None
    flower: str | None = None
    grafana: str | None = None
    docs: str = "/docs"


class LatencyPoint(BaseModel):
    recorded_at: str = Field(description="When the fill was committed here (ISO 8601).")
    latency_s: float = Field(description="From the broker's fill time to that commit.")


class LatencySeries(BaseModel):
    window_s: float
    points: list[LatencyPoint] = Field(description=f"Oldest first, the last {LATENCY_POINTS_MAX}.")
    count: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None


class WhoAmI(BaseModel):
    admin: bool
    account: str | None = Field(description="The account an account key reaches; null: admin.")


@router.get("/whoami", response_model=WhoAmI, summary="What this key is")
def whoami(who: Annotated[Principal, Depends(principal)]) -> WhoAmI:
    return WhoAmI(admin=who.is_admin, account=who.account_name)


@router.get("/links", response_model=Links, dependencies=[Depends(principal)],
            summary="Where Flower, Grafana and the metrics are")  # fmt: skip
def links(state: Annotated[ApiState, Depends(api_state)]) -> Links:
    s = state.settings
    return Links(metrics=s.metrics_url, flower=s.flower_url, grafana=s.grafana_url)


@router.get("/accounts/{account}/fill-latency", response_model=LatencySeries,
            summary="Fill detection latency of the account's recent fills")  # fmt: skip
def fill_latency(
    account: Annotated[Account, Depends(account_scope)],
    session: Annotated[Session, Depends(db_session)],
    state: Annotated[ApiState, Depends(api_state)],
    window_s: Annotated[float, Query(gt=0, le=86400)] = 3600.0,
) -> LatencySeries:  # fmt: skip
    latency = account_latency(session, account.id, state.now(), window_s)
    summary = latency.summary
    return LatencySeries(
        window_s=window_s,
        points=[LatencyPoint(recorded_at=r.isoformat(), latency_s=round(v, 6))
                for r, v in latency.points],
        count=len(latency.points), p50_s=summary.p50_s, p90_s=summary.p90_s, p99_s=summary.p99_s,
        max_s=summary.max_s,
    )  # fmt: skip
