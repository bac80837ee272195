"""``ordersync bench``: its comparison with the exchange's truth, its sender, and a real run."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.enums import (
    BrokerKind,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from models import migrate
from models.accounts import ensure_account
from models.db import make_engine
from models.orders import Order, OrderEvent
from ordersync import bench_sender
from ordersync.bench import (
    DEFAULT_AMQP_URL,
    LocalFill,
    LocalOrder,
    Transport,
    compare,
    drops,
    failed,
    latencies,
    percentile,
    recovery,
    transport_url,
)
from ordersync.bench_venue import TruthOrder
from ordersync.bench_venue.alpaca import SENDER_VENUE as ALPACA_VENUE
from ordersync.bench_venue.alpaca import truth_order as alpaca_truth
from ordersync.cli import app
from ordersync.settings import get_settings
from tests.ordersync.test_up import STDLIB, TASKS_EXIST, imported_roots

REQUIRED_KEYS = {
    "orders", "missed_fills", "duplicate_fills", "mismatched_orders", "latency_p50_s",
    "latency_p95_s", "latency_p99_s", "latency_max_s", "broker_requests_per_order",
    "orders_per_s", "sent_per_s", "wall_s", "settings",
}  # fmt: skip
T0 = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)


def truth_record(client_order_id: str, fills: list[tuple[str, str, str]]) -> dict[str, Any]:
    """An exchange truth record: FILLED with these (id, qty, price) fills."""
    qty = sum(Decimal(q) for _, q, _ in fills)
    notional = sum(Decimal(q) * Decimal(p) for _, q, p in fills)
    return {
        "id": f"broker-{client_order_id}", "client_order_id": client_order_id,
        "status": "filled", "qty": str(qty), "filled_qty": str(qty),
        "filled_avg_price": str((notional / qty).quantize(Decimal("1e-9"))),
        "fills": [{"id": i, "qty": q, "price": p, "time": T0.isoformat()} for i, q, p in fills],
        "created_at": T0.isoformat(),
    }  # fmt: skip


def truth_order(client_order_id: str, fills: list[tuple[str, str, str]]) -> TruthOrder:
    return alpaca_truth(truth_record(client_order_id, fills))


def local_order(client_order_id: str, filled: str, avg: str | None) -> LocalOrder:
    return LocalOrder(
        client_order_id, f"broker-{client_order_id}", OrderStatus.FILLED, Decimal(filled),
        Decimal(filled), None if avg is None else Decimal(avg),
    )  # fmt: skip


def local_fill(client_order_id: str, fill_id: str, qty: str, price: str) -> LocalFill:
    return LocalFill(
        client_order_id, fill_id, Decimal(qty), Decimal(price), T0, T0 + timedelta(seconds=0.25)
    )


def test_a_faithful_record_compares_clean() -> None:
    truth = [truth_order("b-1", [("f1", "1", "10.00"), ("f2", "2", "10.01")])]
    orders = {"b-1": local_order("b-1", "3", "10.00666666666666666666666667")}
    fills = [local_fill("b-1", "f1", "1", "10.00"), local_fill("b-1", "f2", "2", "10.01")]
    result = compare(truth, orders, fills)
    assert (result["missed_fills"], result["duplicate_fills"], result["mismatched_orders"]) == (
        0, 0, 0,
    )  # fmt: skip
    assert result["mismatched_fills"] == 0


def test_missed_duplicate_and_mismatched_are_counted() -> None:
    truth = [
        truth_order("b-1", [("f1", "1", "10.00"), ("f2", "1", "10.00")]),
        truth_order("b-2", [("f3", "5", "20.00")]),
        truth_order("b-3", [("f4", "1", "30.00")]),
    ]
    orders = {
        "b-1": local_order("b-1", "1", "10.00"),  # missed f2: filled differs too
        "b-2": local_order("b-2", "5", "20.00"),
        "b-4": local_order("b-4", "1", "40.00"),  # unknown to the exchange
    }
    fills = [
        local_fill("b-1", "f1", "1", "10.00"),
        local_fill("b-2", "f3", "5", "20.00"),
        local_fill("b-2", "f9", "1", "20.00"),  # no such fill at the exchange
        local_fill("b-4", "f8", "1", "40.00"),
    ]
    result = compare(truth, orders, fills)
    assert result["missed_fills"] == 2  # f2, and b-3's f4 (b-3 missing locally)
    assert result["duplicate_fills"] == 2  # f9, f8
    mismatched = {m["client_order_id"]: m["reasons"] for m in result["mismatches"]}
    assert set(mismatched) == {"b-1", "b-3", "b-4"}
    assert any(reason.startswith("filled 1 != 2") for reason in mismatched["b-1"])
    assert mismatched["b-3"] == ["missing locally"]


def test_an_order_the_exchange_holds_twice_under_one_client_id_is_counted_and_fails() -> None:
    """Binance takes a client order id again once its first order is closed: a resend after
    a fill makes a second order, which the local record (one order) cannot show."""
    first = truth_order("b-1", [("f1", "1", "10.00")])
    second = dataclasses.replace(truth_order("b-1", [("f2", "1", "10.50")]),
                                 broker_order_id="broker-b-1-again")  # fmt: skip
    orders = {"b-1": dataclasses.replace(local_order("b-1", "1", "10.50"),
                                         broker_order_id="broker-b-1-again")}  # fmt: skip
    result = compare([first, second], orders, [local_fill("b-1", "f2", "1", "10.50")])
    assert result["duplicate_orders"] == 1
    assert result["duplicate_order_examples"] == [
        {"client_order_id": "b-1", "broker_order_ids": ["broker-b-1", "broker-b-1-again"]}
    ]
    assert failed({**result, "late": 0, "deadline_passed": False})
    clean = compare([second], orders, [local_fill("b-1", "f2", "1", "10.50")])
    assert clean["duplicate_orders"] == 0
    assert not failed({**clean, "late": 0, "deadline_passed": False})


def test_a_streamed_fill_matches_the_exchanges_by_its_cumulative_quantity() -> None:
    """Recorded from the stream under its execution id: the exchange's fill is the one of
    the order's filled quantity with it; a second record of it is a duplicate."""
    truth = [truth_order("b-1", [("f1", "1", "10.00"), ("f2", "2", "10.01")])]
    orders = {"b-1": local_order("b-1", "3", "10.00666666666666666666666667")}
    streamed = dataclasses.replace(local_fill("b-1", "exec-9", "2", "10.01"),
                                   cum_quantity=Decimal("3"))  # fmt: skip
    clean = compare(truth, orders, [local_fill("b-1", "f1", "1", "10.00"), streamed])
    assert (clean["missed_fills"], clean["duplicate_fills"], clean["mismatched_fills"]) == (
        0, 0, 0)  # fmt: skip
    doubled = compare(truth, orders, [local_fill("b-1", "f1", "1", "10.00"), streamed,
                                      local_fill("b-1", "f2", "2", "10.01")])  # fmt: skip
    assert (doubled["missed_fills"], doubled["duplicate_fills"]) == (0, 1)
    unmatched = dataclasses.replace(streamed, cum_quantity=Decimal("2.5"))
    lost = compare(truth, orders, [local_fill("b-1", "f1", "1", "10.00"), unmatched])
    assert (lost["missed_fills"], lost["duplicate_fills"]) == (1, 1)


def test_a_status_or_average_price_difference_is_a_mismatch() -> None:
    truth = [truth_order("b-1", [("f1", "2", "10.00")])]
    orders = {"b-1": LocalOrder("b-1", "broker-b-1", OrderStatus.NEW, Decimal(2), Decimal(2),
                                Decimal("10.01"))}  # fmt: skip
    result = compare(truth, orders, [local_fill("b-1", "f1", "2", "10.00")])
    (mismatch,) = result["mismatches"]
    assert [reason.split()[0] for reason in mismatch["reasons"]] == ["status", "average"]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 50) is None
    assert latencies([local_fill("b", "f", "1", "1")])["latency_max_s"] == 0.25


def test_the_sender_imports_only_celery_kombu_and_the_standard_library() -> None:
    roots = imported_roots(Path(bench_sender.__file__)) - STDLIB - {"__future__"}
    assert roots == {"celery", "kombu"}


def test_the_sender_mixes_limits_and_cancels_with_decimal_strings() -> None:
    rng = random.Random(1)
    made = [
        bench_sender.order_kwargs(
            n, account="a", prefix="p-", mix="mixed", rng=rng, prices={}, venue=ALPACA_VENUE
        )
        for n in range(10)
    ]
    assert [kwargs["client_order_id"] for kwargs, _ in made] == [f"p-{n}" for n in range(10)]
    assert [cancel for _, cancel in made] == [False, False, False, False, True] * 2
    for kwargs, _ in made:
        assert isinstance(kwargs["quantity"], str)
        if "limit_price" in kwargs:
            assert Decimal(kwargs["limit_price"]) > 0


@pytest.mark.integration
def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    deadline = "90" if TASKS_EXIST else "3"
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--orders", "20", "--json", str(out),
         "--workers", "1", "--deadline-s", deadline],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert set(figures) >= REQUIRED_KEYS
    assert figures["orders"] == 20
    assert {"worker_concurrency", "database", "redis", "versions"} <= set(figures["settings"])
    if not TASKS_EXIST:
        assert result.returncode == 1
        return
    assert (figures["missed_fills"], figures["duplicate_fills"]) == (0, 0), figures
    assert figures["mismatched_orders"] == 0, figures["mismatches"]
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.skipif(not TASKS_EXIST, reason="the worker's tasks are not built yet")
def test_bench_runs_round_trips_at_binance_end_to_end(tmp_path: Path) -> None:
    """Binance accounts at the exchange's /api/v3, funded; orders of its pairs; the truth
    read from its Binance part, fills by trade id; requests and weight of its routes."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--broker", "binance", "--orders", "12",
         "--mix", "roundtrip", "--exit-after-s", "0.5", "--json", str(out), "--workers", "1",
         "--deadline-s", "90"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(figures) >= REQUIRED_KEYS | {"broker_weight_per_order"}
    assert figures["settings"]["broker"] == "binance"
    assert (figures["missed_fills"], figures["duplicate_fills"]) == (0, 0), figures
    assert figures["mismatched_orders"] == 0, figures["mismatches"]
    assert figures["exchange_orders"] == 12  # every entry and exit placed, none refused
    assert figures["exits_refused"] == figures["broker_refused"] == 0
    routes = figures["broker_requests_by_route"]
    assert routes["POST /api/v3/order"] >= 12
    assert all(" /api/v3/" in route for route in routes)
    assert "ordersync bench --broker binance" in result.stdout


@pytest.mark.integration
@pytest.mark.skipif(not TASKS_EXIST, reason="the worker's tasks are not built yet")
def test_bench_runs_mixed_orders_at_coinbase_end_to_end(tmp_path: Path) -> None:
    """Coinbase keys made by the stack (the exchange holds their public halves), funded;
    market orders, limits that fill and limits canceled, of its products; the truth read
    from its Coinbase part, fills by entry id; requests of its brokerage routes."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--broker", "coinbase", "--orders", "10",
         "--mix", "mixed", "--json", str(out), "--workers", "1", "--deadline-s", "90"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(figures) >= REQUIRED_KEYS
    assert "broker_weight_per_order" not in figures  # Coinbase counts requests, not weight
    assert (figures["settings"]["broker"], figures["settings"]["rate_limit_per_min"]) == (
        "coinbase", 1800)  # fmt: skip
    assert (figures["missed_fills"], figures["duplicate_fills"]) == (0, 0), figures
    assert figures["mismatched_orders"] == 0, figures["mismatches"]
    assert figures["exchange_orders"] == 10  # every order placed, none refused
    assert figures["broker_refused"] == figures["dropped"] == 0
    assert figures["exchange_fills"] == figures["local_fills"] > 0
    routes = figures["broker_requests_by_route"]
    assert routes["POST /api/v3/brokerage/orders"] >= 10
    assert routes["POST /api/v3/brokerage/orders/batch_cancel"] >= 2  # the resting limits
    assert all(" /api/v3/brokerage/" in route for route in routes)
    assert "ordersync bench --broker coinbase" in result.stdout


@pytest.mark.integration
@pytest.mark.skipif(not TASKS_EXIST, reason="the worker's tasks are not built yet")
def test_bench_runs_mixed_orders_at_tradier_end_to_end(tmp_path: Path) -> None:
    """Tradier accounts made by the stack (account numbers with their tokens bound at the
    exchange); market orders and limits that fill or are canceled, all buys; the truth read
    from its Tradier part, derived fills compared per order, positions with the ledger's;
    requests of its /v1 routes within its 120 reads a minute."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--broker", "tradier", "--orders", "10",
         "--mix", "mixed", "--json", str(out), "--workers", "1", "--deadline-s", "90"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert (figures["settings"]["broker"], figures["settings"]["rate_limit_per_min"]) == (
        "tradier", 120)  # fmt: skip
    assert (figures["missed_fills"], figures["duplicate_fills"]) == (0, 0), figures
    assert figures["mismatched_orders"] == figures["mismatched_fills"] == 0, figures["mismatches"]
    assert figures["position_mismatches"] == 0, figures["position_mismatch_examples"]
    assert figures["exchange_orders"] == 10  # every order placed, none refused
    assert figures["broker_refused"] == figures["dropped"] == 0
    assert figures["local_fills"] > 0
    routes = figures["broker_requests_by_route"]
    assert routes["POST /v1/accounts/{account_id}/orders"] >= 10
    assert routes["DELETE /v1/accounts/{account_id}/orders/{order_id}"] >= 2  # resting limits
    assert all(" /v1/accounts/" in route for route in routes)
    assert "ordersync bench --broker tradier" in result.stdout


@pytest.mark.integration
@pytest.mark.skipif(not TASKS_EXIST, reason="the worker's tasks are not built yet")
def test_bench_runs_round_trips_at_oanda_end_to_end(tmp_path: Path) -> None:
    """OANDA accounts made by the stack (v20 account ids with their tokens); round trips of
    its instruments in whole units; the truth read from its OANDA part, fills by ORDER_FILL
    transaction id, positions with the ledger's; requests of its /v3 routes."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--broker", "oanda", "--orders", "10",
         "--mix", "roundtrip", "--exit-after-s", "0.5", "--json", str(out), "--workers", "1",
         "--deadline-s", "90"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert (figures["settings"]["broker"], figures["settings"]["rate_limit_per_min"]) == (
        "oanda", 6000)  # fmt: skip
    assert (figures["missed_fills"], figures["duplicate_fills"]) == (0, 0), figures
    assert figures["mismatched_orders"] == 0, figures["mismatches"]
    assert figures["position_mismatches"] == 0, figures["position_mismatch_examples"]
    assert figures["exchange_orders"] == 10  # every entry and exit placed, none refused
    assert figures["exits_refused"] == figures["broker_refused"] == 0
    assert figures["exchange_fills"] == figures["local_fills"] >= 10
    routes = figures["broker_requests_by_route"]
    assert routes["POST /v3/accounts/{account_id}/orders"] >= 10
    assert all(" /v3/accounts/" in route for route in routes)
    assert "ordersync bench --broker oanda" in result.stdout


def test_the_sweep_is_refused_at_binance_before_anything_starts(tmp_path: Path) -> None:
    found = CliRunner().invoke(app, ["bench", "--broker", "binance", "--sweep-orders", "10",
                                     "--json", str(tmp_path / "b.json")])  # fmt: skip
    assert found.exit_code == 2
    assert "--sweep-orders" in found.output
    assert "Alpaca" in found.output
    assert not (tmp_path / "b.json").exists()


@pytest.mark.skipif(not TASKS_EXIST, reason="the worker's tasks are not built yet")
def test_bench_stream_measures_polling_and_the_stream_on_the_same_orders(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--orders", "12", "--json", str(out),
         "--workers", "1", "--stream", "--stream-faults", "--deadline-s", "90"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert out.exists(), result.stderr
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    for phase in ("polling", "stream"):
        assert set(figures[phase]) >= REQUIRED_KEYS - {"orders", "wall_s", "settings"}
        assert (figures[phase]["missed_fills"], figures[phase]["duplicate_fills"]) == (0, 0)
        assert figures[phase]["mismatched_orders"] == 0, figures[phase]["mismatches"]
    assert figures["stream"]["stream"]["events"] > 0  # the exchange's stream figures
    assert figures["settings"]["stream"] is True
    assert "polling)" in result.stdout
    assert "stream)" in result.stdout


def placed_at(client_order_id: str, created: datetime) -> TruthOrder:
    record = truth_record(client_order_id, [("f", "1", "10")])
    return alpaca_truth({**record, "created_at": created.isoformat()})


def rejected(client_order_id: str, error: str) -> LocalOrder:
    return LocalOrder(client_order_id, None, OrderStatus.REJECTED, Decimal(0), Decimal(0),
                      None, T0, error)  # fmt: skip


def test_drops_are_counted_by_cause_and_the_callers_own_refusals_are_not() -> None:
    deadline = T0 + timedelta(seconds=30)
    on_time = LocalOrder("p-0", "b", OrderStatus.FILLED, Decimal(1), Decimal(1), None, deadline)
    late = LocalOrder("p-1", "b", OrderStatus.FILLED, Decimal(1), Decimal(1), None, deadline)
    orders = {
        "p-0": on_time, "p-1": late,
        "p-2": rejected("p-2", "placement deadline 2026-01-05T15:30:30+00:00 passed; never "
                               "reached the broker"),
        "p-3": rejected("p-3", "insufficient buying power (broker=alpaca, http_status=403)"),
        "p-5": LocalOrder("p-5", None, OrderStatus.PENDING_NEW, Decimal(0), Decimal(0), None),
    }  # fmt: skip
    truth = [placed_at("p-0", T0 + timedelta(seconds=1)),
             placed_at("p-1", deadline + timedelta(seconds=1))]  # fmt: skip
    refused = {"p-6": "ordersync.place_order: exit refused: no trade 'x' in this account"}
    result = drops(truth, orders, refused, [f"p-{n}" for n in range(7)])
    assert result["late"] == 1
    assert result["broker_refused"] == 1  # p-3: refused as asked, not a drop
    assert result["exits_refused"] == 1
    assert result["dropped_by_cause"] == {
        "deadline passed before it could be sent": 1,  # p-2
        "no order row: no worker ran the call (still queued, or lost by the transport)": 1,
        "still PENDING_NEW: ": 1,  # p-5: silent, and fails the run
    }
    assert failed({**result, "missed_fills": 0, "deadline_passed": False})


def test_round_trips_send_each_exit_after_its_entry_in_the_same_account() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    args = bench_sender.argparse.Namespace(
        seed=1,
        prices="{}",
        venue=json.dumps(ALPACA_VENUE),
        accounts="a,b",
        mix="roundtrip",
        orders=4,
        rate=0,
        prefix="p-",
        cancel_after_s=1.0,
        exit_after_s=0.0,
        valid_for_s=30.0,
    )
    bench_sender.send_all(lambda task, kwargs: sent.append((task, kwargs)), args)
    entries = [k for _, k in sent if k.get("intent") == "ENTRY"]
    exits = [k for _, k in sent if k.get("intent") == "EXIT"]
    assert [e["client_order_id"] for e in entries] == ["p-0", "p-2"]
    assert [(e["client_order_id"], e["trade_id"]) for e in exits] == [
        ("p-1", "p-d0"), ("p-3", "p-d2")]  # fmt: skip
    for entry, exit_ in zip(entries, exits, strict=True):
        assert (exit_["account"], exit_["quantity"], exit_["side"]) == (
            entry["account"], entry["quantity"], "sell")  # fmt: skip
    assert [e["account"] for e in entries] == ["a", "b"]


def test_the_transport_is_rabbitmq_only_when_asked_or_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERSYNC_CELERY_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert transport_url(None, None) is None
        assert transport_url(Transport.REDIS, None) is None
        assert transport_url(Transport.RABBITMQ, None) == DEFAULT_AMQP_URL
        url = "amqp://u:p@127.0.0.1:5672/bench"
        assert transport_url(None, url) == url
        with pytest.raises(typer.BadParameter, match="amqp"):
            transport_url(Transport.RABBITMQ, "redis://127.0.0.1:6379/0")
        with pytest.raises(typer.BadParameter, match="--transport rabbitmq"):
            transport_url(Transport.REDIS, url)
        monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", url)
        get_settings.cache_clear()
        assert transport_url(None, None) == url
        assert transport_url(Transport.REDIS, None) is None
    finally:
        get_settings.cache_clear()


def test_recovery_is_the_longest_wait_past_each_kill_of_placements_sent_before_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    t0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    # (client order id, sent s, answer recorded s or None: never placed)
    placements = (("p-1", 0, 3), ("p-2", 1, 12), ("p-3", 20, 21), ("p-4", 1, None))
    with Session(engine) as session:
        account = ensure_account(session, name="a", broker=BrokerKind.ALPACA, base_url="x",
                                 credentials_env="X", rate_limit_per_min=200, now=t0)  # fmt: skip
        session.flush()
        for cid, sent_s, answered_s in placements:
            order = Order(
                account_id=account.id, broker=BrokerKind.ALPACA, client_order_id=cid,
                origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
                order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                quantity=Decimal("1"), status=OrderStatus.NEW,
                created_at=t0 + timedelta(seconds=sent_s), updated_at=t0,
            )  # fmt: skip
            session.add(order)
            session.flush()
            if answered_s is None:
                continue
            for from_status, to_status, at_s in (
                (OrderStatus.PENDING_NEW, OrderStatus.NEW, answered_s),
                (OrderStatus.NEW, OrderStatus.FILLED, answered_s + 30),
            ):
                session.add(OrderEvent(
                    order_id=order.id, kind="status", from_status=from_status,
                    to_status=to_status, filled_quantity=Decimal(0),
                    source=ReportSource.PLACEMENT, at=t0 + timedelta(seconds=at_s),
                ))  # fmt: skip
        session.commit()
    sent_at = {cid: (t0 + timedelta(seconds=s)).timestamp() for cid, s, _ in placements}
    kills = [(t0 + timedelta(seconds=s)).timestamp() for s in (2, 15)]
    try:
        found = recovery(kills, engine, "p-", sent_at)
        assert found == {"after_kill_s": [10.0, 0.0], "max_s": 10.0}
    finally:
        engine.dispose()
