"""One account's trades with their outcomes, positions, and events (a page after an id, or a
live stream of server-sent events)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.auth import Principal, account_scope, principal, still_valid
from api.deps import ApiState, api_state, db_session
from api.event_log import read_page
from api.events import event_stream
from api.schemas import EventOut, EventPage, FeeOut, PositionOut, TradeOut
from models.orders import Account
from models.trades import TradeStatus
from ordersync.positions import fees, positions, trades

router = APIRouter(prefix="/api/v1/accounts/{account}", tags=["activity"])
GAP_WAIT_S = 1.0  # how long a page waits for an event that may still commit before it
ScopedAccount = Annotated[Account, Depends(account_scope)]
DbSession = Annotated[Session, Depends(db_session)]


@router.get("/trades", response_model=list[TradeOut], summary="Trades, newest first")
def list_trades(
    account: ScopedAccount, session: DbSession,
    status: Literal["open", "closed", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TradeOut]:  # fmt: skip
    chosen = None if status == "all" else TradeStatus(status.upper())
    rows = trades(session, account.name, status=chosen, limit=limit)
    return [TradeOut.model_validate(t) for t in rows]


@router.get("/positions", response_model=list[PositionOut], summary="Positions by symbol")
def list_positions(account: ScopedAccount, session: DbSession) -> list[PositionOut]:
    return [PositionOut.model_validate(p) for p in positions(session, account.name)]


@router.get("/fees", response_model=list[FeeOut],
            summary="Fees posted apart from the fills (crypto), newest first")  # fmt: skip
def list_fees(
    account: ScopedAccount, session: DbSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FeeOut]:  # fmt: skip
    return [FeeOut.model_validate(f) for f in fees(session, account.name, limit=limit)]


@router.get("/events", response_model=EventPage,
            summary="Events after an id, oldest first (catch up on what you missed)")  # fmt: skip
def list_events(
    account: ScopedAccount, state: Annotated[ApiState, Depends(api_state)],
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:  # fmt: skip
    events, position = read_page(state.ctx.sessions, account.id, after, limit,
                                 wait_s=GAP_WAIT_S)  # fmt: skip
    return EventPage(items=[EventOut.model_validate(e) for e in events], next_after=position)


@router.get(
    "/events/stream",
    summary="Events as server-sent events, live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`id:` is the event's id, `event:` its kind, `data:` JSON"}},
)  # fmt: skip
def stream_events(
    request: Request, account: ScopedAccount, state: Annotated[ApiState, Depends(api_state)],
    who: Annotated[Principal, Depends(principal)],
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> StreamingResponse:  # fmt: skip
    """From ``after`` (or the ``Last-Event-ID`` a reconnecting browser sends); neither: only
    events from now on. The stream ends (an ``event: revoked`` frame) within seconds of its
    key being revoked."""
    start = last_event_id if last_event_id is not None else after
    return StreamingResponse(
        event_stream(request, state, account.id, start, partial(still_valid, state, who)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
