"""Coinbase's official SDK's ``WSUserClient`` against the paper exchange's user WebSocket:
it cannot run with the websockets ordersync pins (17), so this records why, by trying."""

from __future__ import annotations

import pytest

from tests.brokers.coinbase.paper import KEY_NAME, PRIVATE

WSUserClient = pytest.importorskip("coinbase.websocket").WSUserClient


def test_the_sdks_user_client_cannot_connect_with_the_pinned_websockets() -> None:
    """coinbase-advanced-py requires websockets<14: it passes ``extra_headers`` to
    ``websockets.connect`` (and reads ``.open`` of the connection), both gone since 14.
    When it connects, this test is to become the SDK's run against /ws/user."""
    client = WSUserClient(api_key=KEY_NAME, api_secret=PRIVATE, base_url="ws://127.0.0.1:9",
                          on_message=lambda _: None, retry=False)  # fmt: skip
    try:
        client.open()
    except TypeError as error:
        if "extra_headers" not in str(error):
            raise
        pytest.skip(f"coinbase-advanced-py's WSUserClient cannot run on websockets>=14: {error}")
    finally:
        if client.loop is not None and not client.loop.is_closed():
            client.loop.call_soon_threadsafe(client.loop.stop)
            client.thread.join(timeout=5)
            client.loop.close()
    pytest.fail("the SDK connected: test it against the paper exchange's /ws/user instead")
