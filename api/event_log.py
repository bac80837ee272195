"""One account's events in outbox id order, never passing an id that may still commit.

On PostgreSQL an event can commit after one with a higher id (two transactions, ids taken
in one order, commits in the other): a reader that moved past the lower id would never see
it. So the position moves over consecutive ids, and over a gap only once the gap is final,
decided as the webhooks decide it (worker/webhooks.py, "Id gaps"): the highest visible id
and the transactions then writing to the outbox are watched; once none of those is still
writing, every id up to that head is final. On SQLite ids commit in order: every gap below
a visible event is final. Gaps are judged on every account's ids, so another account's
events (read as ids only) never look like gaps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.reads import event_json
from models.orders import Order
from models.outbox import OutboxEvent, outbox_writers

EVERY_ID = 2**63 - 1
SCAN = 1000  # ids (of every account) looked at per read
GAP_POLL_S = 0.05
# How far below the newest event a stream "from now" looks for ids still being written.
LOOK_BACK = 1000


@dataclass
class EventCursor:
    """Where a reader is: every id up to ``after`` was read or is a final gap."""

    after: int
    final: int = 0  # every id up to it is committed or never will be
    watch_head: int | None = None  # a gap is being watched: the head seen with it ...
    watch_writers: frozenset[str] = field(default_factory=frozenset)  # ... and its writers
    skip: frozenset[int] = field(default_factory=frozenset)  # visible before the reader began

    @property
    def at_gap(self) -> bool:
        return self.watch_head is not None

    @property
    def position(self) -> int:
        """Where a reader that lost this one resumes without missing an event."""
        return self.after


def read_events(
    session: Session, account_id: str | None, cursor: EventCursor, limit: int
) -> list[dict[str, Any]]:
    """The account's events after the cursor (``account_id`` None: every account's), at most
    ``limit``, moving the cursor past what they cover and no further than is final."""
    _update_final(session, cursor)
    rows = session.execute(
        select(OutboxEvent.id, Order.account_id)
        .outerjoin(Order, Order.id == OutboxEvent.order_id)
        .where(OutboxEvent.id > cursor.after)
        .order_by(OutboxEvent.id)
        .limit(SCAN)
    ).all()
    mine: list[int] = []
    for event_id, owner in rows:
        if event_id > cursor.after + 1 and event_id - 1 > cursor.final:
            _watch(session, cursor)  # a gap that may still fill: stop before it
            break
        cursor.after = event_id
        if event_id in cursor.skip:
            continue
        if account_id is None or owner == account_id:
            mine.append(event_id)
            if len(mine) >= limit:
                break
    if not mine:
        return []
    events = session.scalars(
        select(OutboxEvent).where(OutboxEvent.id.in_(mine)).order_by(OutboxEvent.id)
    )
    return [event_json(e) for e in events]


def start_now(session: Session) -> EventCursor:
    """A cursor for "events from now on": after the newest visible event, except that ids
    below it still being written (PostgreSQL) are read when they commit; the events already
    visible among the last ``LOOK_BACK`` ids are skipped."""
    head = int(session.scalar(select(func.max(OutboxEvent.id))) or 0)
    if session.get_bind().dialect.name == "sqlite":
        return EventCursor(head, final=EVERY_ID)
    writers = frozenset(outbox_writers(session))
    if not writers:
        return EventCursor(head, final=head)
    start = max(head - LOOK_BACK, 0)
    visible = session.scalars(
        select(OutboxEvent.id).where(OutboxEvent.id > start, OutboxEvent.id <= head)
    )
    return EventCursor(start, watch_head=head, watch_writers=writers, skip=frozenset(visible))


def _update_final(session: Session, cursor: EventCursor) -> None:
    if session.get_bind().dialect.name == "sqlite":
        cursor.final = EVERY_ID
        return
    if cursor.watch_head is not None and not cursor.watch_writers & outbox_writers(session):
        # Every id up to the head is final; this statement's successors see their commits.
        cursor.final = max(cursor.final, cursor.watch_head)
        cursor.watch_head, cursor.watch_writers = None, frozenset()


def _watch(session: Session, cursor: EventCursor) -> None:
    """The highest visible id, then the writers: every id up to that head was taken by one
    of them or by a transaction that has ended."""
    if cursor.watch_head is None:
        cursor.watch_head = int(session.scalar(select(func.max(OutboxEvent.id))) or 0)
        cursor.watch_writers = frozenset(outbox_writers(session))


def read_page(
    sessions: sessionmaker[Session], account_id: str | None, after: int, limit: int, *,
    wait_s: float, sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """Events after ``after`` and the position to continue from; at a gap that may still
    fill, waits up to ``wait_s`` for its writers to end (they are short transactions), then
    answers what comes before it."""
    cursor = EventCursor(after)
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while True:
        with sessions() as session:
            events += read_events(session, account_id, cursor, limit - len(events))
        if len(events) >= limit or not cursor.at_gap or time.monotonic() >= deadline:
            return events, cursor.after
        sleep(GAP_POLL_S)
