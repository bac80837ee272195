"""Headless Chromium for the dashboard's browser test, driven by Selenium.

Chromium and its driver come from Debian's ``chromium`` and ``chromium-driver`` packages;
when either is missing the session installs them with apt-get (as root, or through
``sudo -n``), as ``tests/ops/conftest.py`` does for promtool. Where that is impossible the
browser test fails in CI (``CI`` set, or ``ORDERSYNC_TEST_REQUIRE_SERVICES=1``) and is
skipped elsewhere.

Screenshots go to ``ORDERSYNC_TEST_ARTIFACTS`` when set, else ``var/test-artifacts/dashboard``
under the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver as Chrome
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests import debian

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGES: Final = ("chromium", "chromium-driver")
WINDOW: Final = (1440, 1000)
T = TypeVar("T")


@dataclass(frozen=True)
class Chromium:
    browser: str  # the chromium binary
    driver: str  # its chromedriver


def _install_chromium() -> None:
    """Debian's chromium and chromium-driver; LookupError says why not."""
    debian.install(*PACKAGES)


def locate_chromium() -> Chromium:
    """Chromium and chromedriver, installed first when missing; LookupError says why not."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        _install_chromium()
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise LookupError(f"{' and '.join(PACKAGES)} are installed but not both on PATH")
    return Chromium(browser, driver)


def chromium_unavailable(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere."""
    if debian.in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    try:
        return locate_chromium()
    except (LookupError, OSError, subprocess.TimeoutExpired) as error:
        chromium_unavailable(f"chromium is missing and could not be installed: {error}")


@pytest.fixture
def chrome(chromium: Chromium, tmp_path: Path) -> Iterator[Chrome]:
    """A headless Chromium of its own profile, closed after the test."""
    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US", "--no-first-run",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome'}",
    ):  # fmt: skip
        options.add_argument(argument)
    options.binary_location = chromium.browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromium.driver, log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts_dir() -> Path:
    configured = os.environ.get("ORDERSYNC_TEST_ARTIFACTS")
    directory = Path(configured) if configured else ROOT / "var" / "test-artifacts" / "dashboard"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class Screenshots:
    """Numbered screenshots of the page, one per step (``01-login.png`` ...)."""

    def __init__(self, driver: Chrome, directory: Path) -> None:
        self.driver = driver
        self.directory = directory
        self.taken: list[Path] = []

    def __call__(self, name: str, *, full_page: bool = False) -> Path:
        """The viewport, or with ``full_page`` the whole page as tall as it is."""
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        if full_page:
            size = self.driver.execute_script(
                "return [innerWidth, document.documentElement.scrollHeight]"
            )
            self._cdp("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
        try:
            assert self.driver.save_screenshot(str(path)), f"screenshot {path} not saved"
        finally:
            if full_page:
                self._cdp("Emulation.clearDeviceMetricsOverride")
        self.taken.append(path)
        return path

    def _cdp(self, command: str, **params: object) -> None:
        self.driver.execute_cdp_cmd(command, params)


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], what: str,
               timeout_s: float = 20) -> T:  # fmt: skip
    """Poll a condition on the page until it is truthy; fail naming what never happened.
    Elements the page re-renders meanwhile (stale) or has not made yet are polled again."""
    wait = WebDriverWait(driver, timeout_s, poll_frequency=0.05,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException))  # fmt: skip
    return wait.until(condition, message=f"{what}: not within {timeout_s} s")


def console_errors(driver: Chrome) -> list[str]:
    """The page's script errors (SEVERE console entries other than HTTP answers the page
    expects and handles, such as the 401 of a refused key)."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        str(e["message"])
        for e in entries
        if e.get("level") == "SEVERE" and "Failed to load resource" not in str(e["message"])
    ]
