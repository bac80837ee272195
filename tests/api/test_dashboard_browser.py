"""The dashboard in a real headless Chromium against a whole system: a worker and beat on
SQLite and Redis, the paper exchange, and ``ordersync api`` as its own process.

A key is asked for once (a refused key says so); orders placed by a trading service appear
and change status live, from the event stream, without a reload; an order's detail shows its
history and fills; a resting order is cancelled from the page; the admin compares the
broker's orders with ours. A screenshot of every step goes to the artifacts directory.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import ElementNotInteractableException
from selenium.webdriver.chrome.webdriver import WebDriver as Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.api_keys import create_key, revoke_key
from models.orders import Account
from ordersync.embedded_redis import free_port
from tests.api import browser
from tests.api.browser import Screenshots, artifacts_dir, console_errors, wait_until
from tests.conftest import migrated_database
from tests.paper_exchange import PaperExchange
from tests.processes import stop_process
from tests.worker import conftest as worker_fixtures
from tests.worker.conftest import ACCOUNT, TrackingSystem, tracking_system, wait_for

# The test's own time; installing chromium the first time (fixture set-up) is not counted.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180, func_only=True)]

# The fixtures this test takes from other modules.
tracking_redis_url = worker_fixtures.tracking_redis_url
chromium = browser.chromium
chrome = browser.chrome

ADMIN_KEY = "dashboard-admin-" + "k" * 32
GRAFANA = "http://grafana.example:3000/d/ordersync"  # the API says where Grafana is
PROMETHEUS = "http://prometheus.example:9090/"  # ... and the metrics
SYMBOL = "AAPL"


@dataclass
class Deployed:
    system: TrackingSystem
    api: ApiServer
    key: str  # the account's key

    @property
    def url(self) -> str:
        return self.api.url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def revoke(system: TrackingSystem, key: str) -> None:
    key_id = key.split("_")[1]
    with Session(system.engine) as session:
        account = session.scalar(select(Account).where(Account.name == ACCOUNT))
        assert account is not None
        assert revoke_key(session, account, key_id, now=datetime.now(UTC))
        session.commit()


def _account_key(system: TrackingSystem) -> str:
    with Session(system.engine) as session:
        account = session.scalar(select(Account).where(Account.name == ACCOUNT))
        assert account is not None
        key = create_key(session, account, label="dashboard test", now=datetime.now(UTC)).key
        session.commit()
    return key


class ApiServer:
    """``ordersync api`` as its own process on a port of its own, which a restart keeps."""

    def __init__(self, system: TrackingSystem) -> None:
        self.system = system
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        with (self.system.var_dir / "api.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "ordersync", "api", "--host", "127.0.0.1", "--port", port],
                env=self.system.env | {"ORDERSYNC_API_ADMIN_KEY": ADMIN_KEY,
                                       "ORDERSYNC_GRAFANA_URL": GRAFANA,
                                       "ORDERSYNC_METRICS_URL": PROMETHEUS},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.process = process
        wait_for(lambda: process.poll() is not None or _answers(f"{self.url}/healthz"), 30,
                 "the API answering /healthz")  # fmt: skip
        assert process.poll() is None, f"the API exited:\n{self.system.log('api')}"

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM, and SIGKILL after ``timeout_s``."""
        if self.process is not None:
            stop_process(self.process, timeout_s=timeout_s, group=True)
            self.process = None


@pytest.fixture
def deployed(
    tracking_redis_url: str, paper_exchange: PaperExchange, tmp_path: Path
) -> Iterator[Deployed]:
    for database_url in migrated_database("sqlite", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var") as system:  # fmt: skip
            # Sweeps often enough that the status panel has runs to show within the test.
            system.env |= {"ORDERSYNC_SWEEP_INTERVAL_S": "5",
                           "ORDERSYNC_STALE_REPORT_INTERVAL_S": "5"}  # fmt: skip
            system.add_accounts(2)  # another account, which only the admin sees
            key = _account_key(system)
            system.start_worker("w1", concurrency=2)
            system.start_beat()
            api = ApiServer(system)
            try:
                api.start()
                yield Deployed(system, api, key)
            finally:
                api.stop()


# --- reading the page ----------------------------------------------------------------------


def js(driver: WebDriver, script: str, *args: object) -> object:
    return driver.execute_script(script, *args)


def row_status(driver: WebDriver, client_order_id: str) -> object:
    """The status the orders table shows for the order, None while it has no row."""
    script = ("return document.querySelector(`#orders-table tr[data-client-order-id="
              "'${arguments[0]}'] td[data-status]`)?.textContent ?? null")  # fmt: skip
    return js(driver, script, client_order_id)


def row_order_id(driver: WebDriver, client_order_id: str) -> str:
    found = js(driver, "return document.querySelector(`#orders-table tr[data-client-order-id="
               "'${arguments[0]}']`)?.dataset.orderId", client_order_id)  # fmt: skip
    assert isinstance(found, str)
    return found


def rows(driver: WebDriver) -> list[str]:
    """The client order ids of the orders table's rows, top to bottom."""
    found = js(driver, "return [...document.querySelectorAll('#orders-table tr[data-order-id]')]"
               ".map((row) => row.dataset.clientOrderId)")  # fmt: skip
    assert isinstance(found, list)
    return [str(cid) for cid in found]


def count(driver: WebDriver, selector: str) -> int:
    found = js(driver, "return document.querySelectorAll(arguments[0]).length", selector)
    assert isinstance(found, int)
    return found


def text(driver: WebDriver, selector: str) -> str:
    found = js(driver, "return document.querySelector(arguments[0])?.textContent ?? ''", selector)
    return str(found)


def visible(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_element(By.ID, element_id).is_displayed())


def click(driver: WebDriver, selector: str) -> None:
    """Click the element, found again if the page re-rendered it meanwhile (stale)."""

    def clicked(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_until(driver, clicked, f"{selector} clicked")


def sign_in(driver: WebDriver, key: str) -> None:
    wait_until(driver, lambda d: visible(d, "key-input"), "the key form")
    field = driver.find_element(By.ID, "key-input")
    field.clear()
    field.send_keys(key)
    click(driver, "#key-submit")


def open_order(driver: WebDriver, client_order_id: str) -> str:
    """Click the order's row; returns its order id once the detail panel shows it."""
    order_id = row_order_id(driver, client_order_id)
    click(driver, f"#orders-table tr[data-order-id='{order_id}'] td.symbol")
    wait_until(driver, lambda d: js(d, "const p = document.getElementById('detail'); return "
               "!p.hidden && p.dataset.orderId === arguments[0] && p.dataset.loaded === 'true'",
               order_id), f"the detail of {client_order_id}")  # fmt: skip
    return order_id


def recorded_status(system: TrackingSystem, client_order_id: str) -> str | None:
    """The order's status in the database, None while it has no row."""
    found = [o.status.value for o in system.orders() if o.client_order_id == client_order_id]
    return found[0] if found else None


def place(system: TrackingSystem, client_order_id: str, **terms: str) -> None:
    system.place(client_order_id=client_order_id, symbol=SYMBOL, time_in_force="day", **terms)


# --- the test ------------------------------------------------------------------------------


def test_the_dashboard_follows_orders_live_cancels_and_compares_with_the_broker(
    deployed: Deployed, chrome: Chrome
) -> None:
    driver, system = chrome, deployed.system
    shot = Screenshots(driver, artifacts_dir())
    run = uuid.uuid4().hex[:8]
    decision = f"dash-{run}"
    entry, resting, exit_ = f"dash-entry-{run}", f"dash-rest-{run}", f"dash-exit-{run}"
    offline = f"dash-offline-{run}"

    # Where Flower is, as a deployment's page may say (a script URL is dropped; where Grafana
    # is, the API says).
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.ORDERSYNC_LINKS = {flower: 'http://flower.example:5555/', "
        "docs: 'javascript:alert(1)'}")})  # fmt: skip

    # A refused key says so and stays on the form.
    driver.get(f"{deployed.url}/")
    assert driver.current_url.endswith("/dashboard/")
    sign_in(driver, "osk_000000000000_" + "x" * 43)
    wait_until(driver, lambda d: "refused" in text(d, "#login-message"), "the refusal shown")
    assert not visible(driver, "app")
    shot("key-refused")

    # The account's key: kept in this tab's sessionStorage only, never in the URL.
    sign_in(driver, deployed.key)
    wait_until(driver, lambda d: js(d, "return document.getElementById('live').dataset.state")
               == "live", "the event stream live")  # fmt: skip
    wait_until(driver, lambda d: count(d, "#orders-table tr[data-empty]") == 1, "the empty table")
    assert js(driver, "return sessionStorage.getItem('ordersync.key')") == deployed.key
    assert js(driver, "return localStorage.length") == 0
    assert deployed.key not in driver.current_url
    assert text(driver, "#account-select option:checked").startswith(ACCOUNT)
    assert count(driver, "#tab-debug:not([hidden])") == 0  # not the admin
    js(driver, "window.sameDocument = true")  # gone if the page ever reloads
    shot("signed-in-empty")

    # A market ENTRY placed by the trading service appears and turns FILLED, live.
    place(system, entry, side="buy", quantity="1", order_type="market", intent="ENTRY",
          decision_id=decision)  # fmt: skip
    wait_until(driver, lambda d: row_status(d, entry) == "FILLED", "the entry FILLED", 30)
    wait_until(driver, lambda d: "filled" in text(d, f"tr[data-client-order-id='{entry}'] "
               "td.lifecycle").lower(), "the entry's lifecycle text")  # fmt: skip
    assert js(driver, "return window.sameDocument") is True
    shot("entry-filled")

    # Its detail: the fields, the history, the fills, the trade it opened.
    entry_id = open_order(driver, entry)
    assert text(driver, "#detail-status") == "FILLED"
    assert count(driver, "#detail-history tbody tr:not([data-empty])") >= 2
    assert count(driver, "#detail-fills tbody tr:not([data-empty])") >= 1
    assert decision in text(driver, "#detail-trade")
    assert count(driver, "#detail-links") == 0  # a simple order links to none (no empty legs)
    assert not visible(driver, "detail-cancel")  # nothing to cancel on a FILLED order
    shot("entry-detail")
    # The last broker report (recorded with anomalies only: none here), collapsed until asked.
    assert js(driver, "return document.getElementById('detail-report').open") is False
    click(driver, "#detail-report summary")
    wait_until(driver, lambda d: js(d, "return document.getElementById('detail-report').open"),
               "the broker report opened")  # fmt: skip
    js(driver, "document.getElementById('detail-fills-section').scrollIntoView()")
    shot("entry-fills-and-report")

    # Sync now: the broker's view fetched and applied, the answer shown.
    click(driver, "#detail-sync")
    wait_until(driver, lambda d: "Synced with the broker" in text(d, "#detail-message"),
               "the sync's answer")  # fmt: skip

    # A limit far below the market rests (NEW); cancelled from the page, it turns CANCELED.
    place(system, resting, side="buy", quantity="2", order_type="limit", limit_price="1")
    wait_until(driver, lambda d: row_status(d, resting) == "NEW", "the resting order NEW", 30)
    resting_id = open_order(driver, resting)
    assert resting_id != entry_id
    assert visible(driver, "detail-cancel")
    shot("resting-detail")
    click(driver, "#detail-cancel")
    wait_until(driver, lambda d: "Cancel requested" in text(d, "#detail-message"),
               "the cancel's answer")  # fmt: skip
    wait_until(driver, lambda d: row_status(d, resting) == "CANCELED", "the order CANCELED", 30)
    wait_until(driver, lambda d: text(d, "#detail-status") == "CANCELED", "the detail CANCELED")
    assert not visible(driver, "detail-cancel")
    shot("resting-cancelled")

    # The EXIT closes the trade: the trades table shows it CLOSED with its PnL.
    click(driver, "#detail-close")
    place(system, exit_, side="sell", quantity="1", order_type="market", intent="EXIT",
          decision_id=decision, trade_id=decision)  # fmt: skip
    wait_until(driver, lambda d: row_status(d, exit_) == "FILLED", "the exit FILLED", 30)
    exit_id = row_order_id(driver, exit_)
    closed = f"#trades-table tr[data-trade-id='{decision}'][data-status='CLOSED'] td.pnl"
    wait_until(driver, lambda d: count(d, closed) == 1, "the trade CLOSED with its PnL", 30)
    # The latency chart (read again after fills) and the status panel (every 10 s): the
    # worker online, beat's sweeps run.
    wait_until(driver, lambda d: count(d, "#latency-chart circle.dot") >= 2,
               "the fills in the latency chart", 20)  # fmt: skip
    wait_until(driver, lambda d: text(d, "#status-workers .tile-value") == "1"
               and text(d, "#status-sweeps tr[data-sweep='reconcile_open_orders'] td:last-child")
               == "ok", "the worker and a sweep's run in the status panel", 30)  # fmt: skip
    assert text(driver, "#links a#link-metrics") == "Metrics"
    assert js(driver, "return document.getElementById('link-metrics').href") == PROMETHEUS
    assert js(driver, "return document.getElementById('link-flower').href") == (
        "http://flower.example:5555/"
    )
    assert js(driver, "return document.getElementById('link-grafana').href") == GRAFANA
    assert js(driver, "return document.getElementById('link-docs').getAttribute('href')") == (
        f"{deployed.url}/docs"
    )  # the API's, not the script URL
    assert js(driver, "return window.sameDocument") is True
    shot("overview", full_page=True)

    # The API restarted: the page says it is reconnecting, then catches up on what happened
    # meanwhile (the stream resumes after the last event it had).
    # The page's open event stream does not hold the stop up past the API's short grace.
    process = deployed.api.process
    assert process is not None
    deployed.api.stop(timeout_s=10)
    assert process.returncode != -signal.SIGKILL, "the API needed SIGKILL to stop"
    wait_until(driver, lambda d: js(d, "return document.getElementById('live').dataset.state")
               == "reconnecting", "the page reconnecting")  # fmt: skip
    shot("reconnecting")
    place(system, offline, side="buy", quantity="1", order_type="limit", limit_price="2")
    wait_for(lambda: recorded_status(system, offline) == "NEW", 30,
             "the order placed while the API is down")  # fmt: skip
    deployed.api.start()
    wait_until(driver, lambda d: row_status(d, offline) == "NEW", "the order of the outage", 30)
    assert js(driver, "return document.getElementById('live').dataset.state") == "live"
    assert js(driver, "return window.sameDocument") is True
    offline_id = row_order_id(driver, offline)

    # The filters ask the API again: open orders only, then a symbol with none.
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("open")
    wait_until(driver, lambda d: rows(d) == [offline], "only the open order listed")
    driver.find_element(By.ID, "filter-symbol").send_keys("msft")
    wait_until(driver, lambda d: "No orders match" in text(d, "#orders-table tr[data-empty]"),
               "no open MSFT order")  # fmt: skip
    driver.find_element(By.ID, "filter-symbol").clear()
    Select(driver.find_element(By.ID, "filter-status")).select_by_value("all")
    wait_until(driver, lambda d: len(rows(d)) == 4, "every order listed again")

    # An order placed at the broker behind ordersync's back: a mismatch for the admin.
    stray = httpx.post(f"{system.exchange.base_url}/v2/orders", headers=system.exchange.headers,
                       json={"symbol": "MSFT", "qty": "3", "side": "sell", "type": "limit",
                             "limit_price": "9999", "time_in_force": "day"},
                       timeout=10)  # fmt: skip
    stray.raise_for_status()
    stray_id = stray.json()["id"]

    # The key revoked meanwhile: the next request is refused, the page asks for a key again
    # and keeps nothing the key read.
    revoke(system, deployed.key)
    # The page's own refreshes (the status panel, a stream reconnect) may meet the refusal
    # first and hide the page: then the filter is gone, and the form is what we wait for.
    with contextlib.suppress(ElementNotInteractableException):
        Select(driver.find_element(By.ID, "filter-status")).select_by_value("closed")
    wait_until(driver, lambda d: visible(d, "login"), "the key form after the refusal")
    assert "refused" in text(driver, "#login-message")
    assert js(driver, "return sessionStorage.getItem('ordersync.key')") is None
    assert count(driver, "#app tbody tr") == 0
    assert count(driver, "#link-grafana") == 0  # the API's answer, gone with the key
    shot("key-revoked")

    # The admin's key: every account, and the broker's orders beside ours.
    sign_in(driver, ADMIN_KEY)
    wait_until(driver, lambda d: visible(d, "tab-debug"), "the admin's debug tab")
    assert count(driver, "#account-select option") == 2
    click(driver, "#tab-debug")
    ours = (entry_id, resting_id, exit_id, offline_id)
    wait_until(driver, lambda d: all(count(d, f"#debug-table tr[data-order-id='{i}']") == 1
               for i in ours), "our orders beside the broker's", 20)  # fmt: skip
    for order_id in ours:  # each beside the broker's, the same on both sides
        shown = js(driver, "return {...document.querySelector(`#debug-table tr[data-order-id="
                   "'${arguments[0]}']`).dataset}", order_id)  # fmt: skip
        assert isinstance(shown, dict)
        assert shown["mismatch"] == "false"
        assert shown["brokerOrderId"] != ""
    stray_row = f"#debug-table tr[data-broker-order-id='{stray_id}']"
    assert js(driver, f'return document.querySelector("{stray_row}").dataset.mismatch') == "true"
    assert "unknown to ordersync" in text(driver, f"{stray_row} td.mismatches")
    shot("admin-debug")

    # Forget the key: the form again, the key gone from the tab.
    click(driver, "#forget-key")
    wait_until(driver, lambda d: visible(d, "login"), "the key form again")
    assert "forgotten" in text(driver, "#login-message")
    assert js(driver, "return sessionStorage.getItem('ordersync.key')") is None
    assert count(driver, "#app tbody tr") == 0

    assert console_errors(driver) == []
