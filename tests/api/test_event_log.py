"""The event reader never passes an id that may still commit: on PostgreSQL a later event
can commit first, and a reader that moved past the earlier id would never send it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.event_log import EventCursor, read_events
from models.outbox import EventKind
from tests.api.conftest import ApiWorld
from tests.api.fixtures import add_outbox_event, held_event, make_order, postgresql_only


def read(api: ApiWorld, account: str, cursor: EventCursor) -> list[int]:
    with Session(api.engine) as session:
        return [e["id"] for e in read_events(session, api.account_ids[account], cursor, 100)]


def test_the_reader_waits_at_a_gap_until_its_writer_commits(api: ApiWorld) -> None:
    postgresql_only(api)
    order = make_order(api, "alpha", "a-1")
    first = add_outbox_event(api, order)
    cursor = EventCursor(0)
    assert read(api, "alpha", cursor) == [first]
    with held_event(api, order) as commit:
        later = add_outbox_event(api, order, EventKind.ORDER_FILLED)
        assert read(api, "alpha", cursor) == []  # not past the held id
        assert cursor.after == first
        assert cursor.at_gap
        assert read(api, "alpha", cursor) == []  # its writer is still open
        commit()
    assert read(api, "alpha", cursor) == [later - 1, later]
    assert (cursor.after, cursor.at_gap) == (later, False)


def test_other_accounts_events_are_passed_not_taken_for_gaps(api: ApiWorld) -> None:
    mine = make_order(api, "alpha", "a-1")
    theirs = make_order(api, "beta", "b-1")
    add_outbox_event(api, theirs)
    own = add_outbox_event(api, mine)
    last = add_outbox_event(api, theirs)
    cursor = EventCursor(0)
    assert read(api, "alpha", cursor) == [own]
    assert (cursor.after, cursor.at_gap) == (last, False)
