"""The adapter interface's own behaviour (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers.base import OrderStream, Unreadable
from brokers.errors import BrokerUnavailable
from core.reports import StreamEvent


class _FailingStream(OrderStream):
    """Makes something in ``open`` (an owned client), then fails."""

    def __init__(self) -> None:
        self.made = self.closed = False

    def open(self) -> None:
        self.made = True
        raise BrokerUnavailable("stream: refused", broker="test")

    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        yield None

    def close(self) -> None:
        self.closed = True


def test_a_stream_that_fails_to_open_is_closed_so_nothing_it_made_is_left_open() -> None:
    stream = _FailingStream()
    with pytest.raises(BrokerUnavailable), stream:
        pytest.fail("the body never runs")
    assert (stream.made, stream.closed) == (True, True)
