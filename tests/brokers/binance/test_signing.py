"""Signing against the worked example in Binance's docs, and the clock offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from brokers.binance.signing import ClockOffset, Signer, epoch_ms, sign

# binance-spot-api-docs rest-api.md, "SIGNED endpoint examples for POST /api/v3/order".
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_sign_gives_the_documented_signature() -> None:
    assert sign(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE


def test_signed_query_appends_recv_window_timestamp_and_signature_of_that_text() -> None:
    signer = Signer(DOC_KEY, DOC_SECRET)
    params = {"symbol": "LTCBTC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "1", "price": "0.1"}  # fmt: skip
    assert signer.signed_query(params, 1499827319559, 5000) == (
        f"{DOC_QUERY}&signature={DOC_SIGNATURE}"
    )


def test_signer_repr_shows_no_secret() -> None:
    assert DOC_SECRET not in repr(Signer(DOC_KEY, DOC_SECRET))


def test_clock_offset_is_server_time_minus_the_round_trip_midpoint() -> None:
    sent = datetime(2024, 1, 1, tzinfo=UTC)
    received = sent + timedelta(milliseconds=100)
    clock = ClockOffset()
    assert clock.timestamp_ms(sent) == epoch_ms(sent)  # nothing learned yet
    clock.learn(epoch_ms(sent) + 2050, sent, received)
    assert clock.offset_ms == 2000
    assert clock.timestamp_ms(received) == epoch_ms(received) + 2000
