"""One account's orders: list, look up by any of the three ids, place, cancel, replace,
sync now."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import account_scope
from api.deps import ApiState, api_state, db_session
from api.reads import BadCursor, decode_cursor, encode_cursor, find_order_id, order_details
from api.schemas import (
    CancelAccepted,
    FillOut,
    HistoryOut,
    OrderDetail,
    OrderLinks,
    OrderOut,
    OrderPage,
    OutcomeOut,
    PlaceAccepted,
    ReplaceAccepted,
    SyncOut,
    TradeOut,
    UtcTime,
)
from core.enums import OPEN_STATUSES, TERMINAL_STATUSES, Intent, OrderStatus
from models.orders import Account, Order
from ordersync.positions import order_lifecycles
from ordersync.queries import OrderFilter, OrderView, get_order, list_orders
from worker import manual_sync
from worker.args import (
    ClientOrderId,
    InvalidTaskArguments,
    PlaceOrderArgs,
    PlaceOrderTerms,
    Ref,
    ReplaceOrderArgs,
    ReplaceOrderTerms,
    Symbol,
    parse_args,
)
from worker.placement import client_order_id_for, fit_to_broker
from worker.replacing import (
    NotReplaceable,
    in_flight,
    new_client_order_id_for,
    replace_problem,
    replace_terms,
)

router = APIRouter(prefix="/api/v1/accounts/{account}/orders", tags=["orders"])

OrderId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                                    r"[0-9a-f]{4}-[0-9a-f]{12}$")]  # fmt: skip
StatusFilter = Annotated[
    list[str] | None,
    Query(description="Statuses to list (repeatable), or `open` (the default) or `all`."),
]
ScopedAccount = Annotated[Account, Depends(account_scope)]
State = Annotated[ApiState, Depends(api_state)]
DbSession = Annotated[Session, Depends(db_session)]


def _statuses(values: list[str] | None) -> frozenset[OrderStatus] | None:
    if not values or values == ["open"]:
        return OPEN_STATUSES
    chosen: set[OrderStatus] = set()
    for value in values:  # every value checked, "all" or not: a typo is never ignored
        if value == "all":
            chosen |= set(OrderStatus)
        elif value == "open":
            chosen |= OPEN_STATUSES
        elif value == "closed":
            chosen |= TERMINAL_STATUSES
        else:
            try:
                chosen.add(OrderStatus(value.upper()))
            except ValueError:
                known = ", ".join(s.value for s in OrderStatus)
                raise HTTPException(
                    422, f"unknown status {value!r}: one of open, closed, all, {known}"
                ) from None
    return None if chosen == set(OrderStatus) else frozenset(chosen)


def order_out(view: OrderView, lifecycle: str) -> OrderOut:
    return OrderOut.model_validate({**_fields(view), "lifecycle": lifecycle})


def _fields(view: OrderView) -> dict[str, object]:
    return {name: getattr(view, name) for name in OrderOut.model_fields if name != "lifecycle"}


@router.get("", response_model=OrderPage, summary="List orders (open ones by default)")
def orders(
    account: ScopedAccount, session: DbSession, state: State,
    status: StatusFilter = None,
    symbol: Annotated[Symbol | None, Query()] = None,
    intent: Intent | None = None,
    created_after: Annotated[UtcTime | None, Query(description="Inclusive.")] = None,
    created_before: Annotated[UtcTime | None, Query(description="Exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderPage:  # fmt: skip
    limit = min(limit, state.settings.api_page_size_max)
    try:
        after = decode_cursor(cursor) if cursor else None
    except BadCursor as error:
        raise HTTPException(422, str(error)) from None
    where = OrderFilter(_statuses(status), symbol, intent, created_after, created_before)
    views = list_orders(session, account.id, where, limit=limit + 1, after=after)
    page, more = views[:limit], len(views) > limit
    texts = order_lifecycles(session, page)
    return OrderPage(items=[order_out(v, texts[v.order_id]) for v in page],
                     next_cursor=encode_cursor(page[-1]) if more else None)  # fmt: skip


def _detail(session: Session, order_id: str | None, ref: str) -> OrderDetail:
    details = None if order_id is None else order_details(session, order_id)
    if details is None:
        raise HTTPException(404, f"no order {ref!r} in this account")
    view = details.view
    return OrderDetail(
        order=order_out(view, details.lifecycle),
        history=[HistoryOut.model_validate(e) for e in details.history],
        fills=[FillOut.model_validate(f) for f in details.fills],
        trade=None if details.trade is None else TradeOut.model_validate(details.trade),
        outcome=None if details.outcome is None else OutcomeOut.model_validate(details.outcome),
        links=OrderLinks(
            replaced_by=view.replaced_by_id,
            replaces=view.replaces_id,
            parent=view.parent_id,
            legs=details.legs,
        ),
        last_broker_report=details.last_report,
    )


@router.get("/{order_id}", response_model=OrderDetail, summary="One order by ordersync's id")
def order(account: ScopedAccount, session: DbSession, order_id: OrderId) -> OrderDetail:
    return _detail(session, find_order_id(session, account.id, order_id=order_id), order_id)


@router.get("/by-client-id/{client_order_id}", response_model=OrderDetail,
            summary="One order by its client order id")  # fmt: skip
def order_by_client_id(account: ScopedAccount, session: DbSession,
                       client_order_id: ClientOrderId) -> OrderDetail:  # fmt: skip
    found = find_order_id(session, account.id, client_order_id=client_order_id)
    return _detail(session, found, client_order_id)


@router.get("/by-broker-id/{broker_order_id}", response_model=OrderDetail,
            summary="One order by the broker's order id")  # fmt: skip
def order_by_broker_id(account: ScopedAccount, session: DbSession,
                       broker_order_id: Ref) -> OrderDetail:  # fmt: skip
    found = find_order_id(session, account.id, broker_order_id=broker_order_id)
    return _detail(session, found, broker_order_id)


@router.post("", status_code=202, response_model=PlaceAccepted,
             summary="Place an order (the place_order task contract)")  # fmt: skip
def place(account: ScopedAccount, terms: PlaceOrderTerms, state: State,
          response: Response) -> PlaceAccepted:  # fmt: skip
    """Validated here, then sent as ``ordersync.place_order``: the worker writes the order
    and places it. Give ``client_order_id`` or ``decision_id`` to make a retried request the
    same order; without either, each request is a new one."""
    if not account.is_active:
        raise HTTPException(409, f"account {account.name!r} is disabled")
    # As JSON: the contract's decimals are strings (it refuses Decimal objects, as floats).
    kwargs = {"account": account.name, **terms.model_dump(mode="json", exclude_unset=True)}
    try:  # the task's own parse and broker rules, so nothing the worker would refuse is sent
        args = parse_args(PlaceOrderArgs, "ordersync.place_order", (), kwargs)
        fit_to_broker(account.broker, args)
    except InvalidTaskArguments as error:
        raise HTTPException(422, error.problem) from None
    task_id = str(uuid.uuid4())
    client_order_id = client_order_id_for(account.name, args, task_id)
    kwargs = args.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    kwargs["client_order_id"] = client_order_id
    state.send_task("ordersync.place_order", kwargs=kwargs, task_id=task_id)
    url = f"/api/v1/accounts/{account.name}/orders/by-client-id/{client_order_id}"
    response.headers["Location"] = url
    return PlaceAccepted(client_order_id=client_order_id, task_id=task_id, status_url=url)


def _open_order(session: Session, account: Account, order_id: str) -> OrderView:
    found = find_order_id(session, account.id, order_id=order_id)
    view = None if found is None else get_order(session, found)
    if view is None:
        raise HTTPException(404, f"no order {order_id!r} in this account")
    return view


def _live_end(session: Session, order_id: str) -> Order:
    """The order working in this one's place: along its replacement links to their end
    (a cancel goes there)."""
    order = session.get(Order, order_id)
    assert order is not None
    seen = {order.id}
    while order.replaced_by_id is not None and order.replaced_by_id not in seen:
        successor = session.get(Order, order.replaced_by_id)
        if successor is None:
            break
        seen.add(successor.id)
        order = successor
    return order


@router.post("/{order_id}/cancel", status_code=202, response_model=CancelAccepted,
             summary="Ask for a cancel (PENDING_CANCEL until the broker confirms)")  # fmt: skip
def cancel(account: ScopedAccount, session: DbSession, state: State,
           order_id: OrderId) -> CancelAccepted:  # fmt: skip
    view = _open_order(session, account, order_id)
    live = _live_end(session, order_id)
    if live.status.is_terminal and live.status is not OrderStatus.REPLACED:
        via = "" if live.id == order_id else f" (it was replaced by order {live.id})"
        raise HTTPException(409, f"order {live.id} is {live.status.value}: nothing to "
                            f"cancel{via}")  # fmt: skip
    state.send_task("ordersync.cancel_order", kwargs={"account": account.name,
                    "order_id": order_id})  # fmt: skip
    return CancelAccepted(order_id=order_id, status=view.status,
                          detail="cancel requested; the order shows PENDING_CANCEL until the "
                          "broker confirms (watch the order or its events)")  # fmt: skip


@router.post("/{order_id}/replace", status_code=202, response_model=ReplaceAccepted,
             summary="Replace a working order: a new order takes its place")  # fmt: skip
def replace(account: ScopedAccount, session: DbSession, state: State, order_id: OrderId,
            terms: ReplaceOrderTerms, response: Response) -> ReplaceAccepted:  # fmt: skip
    """Checked here against the order as it is, then sent as ``ordersync.replace_order``.
    Unset terms stay as the order has them; the quantity defaults to what it has left to
    fill. The replacing order inherits the order's intent, decision and trade; the order
    ends REPLACED once the broker confirms (or fills first, and the replacement is
    rejected). Give ``new_client_order_id`` to make a retried request the same
    replacement."""
    if not account.is_active:
        raise HTTPException(409, f"account {account.name!r} is disabled")
    _open_order(session, account, order_id)
    row = session.get(Order, order_id)
    assert row is not None  # found just above, in this session
    if terms.new_client_order_id and (again := session.scalar(select(Order).where(
            Order.account_id == account.id,
            Order.client_order_id == terms.new_client_order_id))) is not None:  # fmt: skip
        if again.replaces_id != order_id:
            raise HTTPException(409, f"client order id {terms.new_client_order_id!r} is "
                                "already used by a different order")  # fmt: skip
        return _replace_accepted(account, order_id, again.client_order_id, None, response)
    if problem := replace_problem(row, in_flight(session, order_id)):
        raise HTTPException(409, problem)
    kwargs = {"account": account.name, "order_id": order_id,
              **terms.model_dump(mode="json", exclude_unset=True)}  # fmt: skip
    try:  # the task's own parse and terms, so nothing the worker would refuse is sent
        args = parse_args(ReplaceOrderArgs, "ordersync.replace_order", (), kwargs)
        replace_terms(row, args)
    except InvalidTaskArguments as error:
        raise HTTPException(422, error.problem) from None
    except NotReplaceable as error:
        raise HTTPException(422, str(error)) from None
    task_id = str(uuid.uuid4())
    client_order_id = new_client_order_id_for(account.name, args, task_id)
    kwargs = args.model_dump(mode="json", exclude_none=True)
    kwargs["new_client_order_id"] = client_order_id
    state.send_task("ordersync.replace_order", kwargs=kwargs, task_id=task_id)
    return _replace_accepted(account, order_id, client_order_id, task_id, response)


def _replace_accepted(account: Account, order_id: str, client_order_id: str,
                      task_id: str | None, response: Response) -> ReplaceAccepted:  # fmt: skip
    url = f"/api/v1/accounts/{account.name}/orders/by-client-id/{client_order_id}"
    response.headers["Location"] = url
    return ReplaceAccepted(replaces=order_id, client_order_id=client_order_id,
                           task_id=task_id, status_url=url)  # fmt: skip


@router.post("/{order_id}/sync", response_model=SyncOut,
             summary="Fetch the broker's view now and apply it")  # fmt: skip
def sync(account: ScopedAccount, state: State, order_id: OrderId) -> SyncOut:
    with state.ctx.sessions() as session:
        _open_order(session, account, order_id)
    # One sync of an order at a time: more would hold server threads and spend the
    # account's request budget, which its monitors share, for nothing new.
    running = f"ordersync:api:sync:{order_id}"
    s = state.settings
    if not state.ctx.redis.set(
        running, "1", nx=True, ex=int(s.api_sync_wait_s + s.order_lock_ttl_s)
    ):
        raise HTTPException(409, f"order {order_id} is being synced already; try again in a "
                            "moment", headers={"Retry-After": "1"})  # fmt: skip
    try:
        result = manual_sync.sync_order(state.ctx, order_id, wait_s=s.api_sync_wait_s)
    except manual_sync.OrderBusy as error:
        raise HTTPException(409, str(error), headers={"Retry-After": "1"}) from None
    except manual_sync.BrokerNotAsked as error:
        raise HTTPException(502, str(error)) from None
    except manual_sync.NoSuchOrder:
        raise HTTPException(404, f"no order {order_id!r} in this account") from None
    finally:
        state.ctx.redis.delete(running)
    with state.ctx.sessions() as session:
        view = _open_order(session, account, order_id)
        text = order_lifecycles(session, [view])[order_id]
    return SyncOut(order_id=order_id, old_status=result.old_status,
                   new_status=result.new_status, outcome=result.outcome,
                   order=order_out(view, text))  # fmt: skip
