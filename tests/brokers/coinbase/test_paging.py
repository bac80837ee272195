"""Oldest-first pages over a newest-first list: no item skipped or repeated, ties included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from brokers.coinbase import paging

T0 = datetime(2026, 12, 4, 10, tzinfo=UTC)


def _keyed(*spec: tuple[int, str]) -> list[paging.Keyed]:
    return [
        paging.Keyed(T0 + timedelta(seconds=s), item_id, {"id": item_id}) for s, item_id in spec
    ]


def _walk_all(keyed: list[paging.Keyed], limit: int) -> list[str]:
    """Page through with tokens, as a caller would, re-reading the same window each time."""
    ids: list[str] = []
    start: paging.Position | None = None
    for _ in range(100):
        page, start = paging.oldest_first(keyed, start, limit, None)
        ids.extend(k.item_id for k in page)
        if start is None:
            return ids
        start = paging.decode(paging.encode(start))
    raise AssertionError("paging did not end")


def test_pages_come_oldest_first_with_ties_by_id() -> None:
    keyed = _keyed((3, "d"), (1, "b"), (1, "a"), (2, "z"), (1, "c"))  # newest first, shuffled

    assert _walk_all(keyed, 2) == ["a", "b", "c", "z", "d"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_every_item_once_whatever_the_page_size(limit: int) -> None:
    keyed = _keyed(*[(i // 3, f"id-{i:02}") for i in range(20)])

    ids = _walk_all(keyed, limit)

    assert sorted(ids) == sorted(k.item_id for k in keyed)
    assert len(ids) == len(set(ids))


def test_an_item_twice_in_one_read_is_returned_once() -> None:
    keyed = _keyed((1, "a"), (1, "a"), (2, "b"))

    assert _walk_all(keyed, 5) == ["a", "b"]


def test_position_after_an_item_starts_with_the_next() -> None:
    keyed = _keyed((1, "a"), (1, "b"), (2, "c"))

    page, _ = paging.oldest_first(keyed, paging.Position(T0 + timedelta(seconds=1), "a"), 5, None)

    assert [k.item_id for k in page] == ["b", "c"]


def test_token_round_trip_and_bad_tokens() -> None:
    position = paging.Position(T0, "entry-1", until=T0 + timedelta(hours=1))

    assert paging.decode(paging.encode(position)) == position
    with pytest.raises(ValueError, match="page token"):
        paging.decode("not-a-token")


def test_items_without_time_or_id_are_kept_apart() -> None:
    keyed, loose = paging.key_items(
        [{"t": "2026-12-04T10:00:00Z", "id": "a"}, {"t": "x"}], "t", "id"
    )

    assert [k.item_id for k in keyed] == ["a"]
    assert loose == [{"t": "x"}]


def test_walk_is_bounded() -> None:
    def endless(cursor: str | None) -> tuple[list[object], str | None]:
        return [cursor], "next"

    with pytest.raises(paging.WindowTooLarge):
        paging.walk(endless, 3, "GET /orders")
