"""The dashboard in a real headless browser: the page of one running mock, as the dashboard
tests drive it (tests/test_dashboard.py, tests/test_dashboard_fleet.py).

Imported by those modules after they skipped themselves where selenium is missing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
INSTANCE_ID = "i-1234567890abcdef0"
NOTICE = "/latest/meta-data/spot/instance-action"
WIDE = (1280, 800)
NARROW = (390, 844)


@contextlib.contextmanager
def chromium(binary: str, driver_path: str) -> Iterator[WebDriver]:
    """One headless chromium, logging the console and the network."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--no-first-run")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Page:
    """The dashboard of one running mock, open in the browser."""

    driver: WebDriver
    control: str  # the control API's base URL
    imds: str  # the IMDS listener's base URL
    token: str | None = None
    allowed_console: list[str] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)
    """The browser's network events read so far (the browser hands each out once)."""

    # -- the browser -----------------------------------------------------------------------

    def open(self, view: str = "instance", size: tuple[int, int] = WIDE) -> None:
        """Load the page at ``view`` in a viewport of ``size`` CSS pixels."""
        self.resize(size)
        self.driver.get(f"{self.control}/#{view}")

    def resize(self, size: tuple[int, int]) -> None:
        """Set the viewport size (not the window's, which includes no browser chrome here)."""
        width, height = size
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def tab(self, name: str) -> None:
        """Click a tab (``Instance``, ``Requests``, ...)."""
        self.by_id(f"tab-{name.lower()}").click()

    def by_id(self, ident: str) -> WebElement:
        """The element with this id."""
        return self.driver.find_element(By.ID, ident)

    def button(self, text: str) -> WebElement:
        """The visible button whose text is ``text``."""
        for element in self.driver.find_elements(By.TAG_NAME, "button"):
            if element.is_displayed() and element.text.strip() == text:
                return element
        raise AssertionError(f"no visible button {text!r}")

    def wait(self, check: Callable[[], Any], seconds: float = 5, what: str = "") -> Any:
        """Poll ``check`` until it returns something true; fail after ``seconds``."""
        try:
            return WebDriverWait(self.driver, seconds, poll_frequency=0.05).until(
                lambda _d: check()
            )
        except TimeoutException:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None

    def text(self) -> str:
        """All text of the page as rendered."""
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def result(self, ident: str) -> str:
        """The text an action wrote into its result line, once it has one."""
        element = self.by_id(ident)
        done = self.wait(lambda: element.text.strip() not in ("", "…") and element.text, what=ident)
        return str(done)

    def shot(self, name: str) -> None:
        """Save a screenshot of the viewport as build/screenshots/NAME.png."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        time.sleep(0.2)  # let the last frame paint
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def log_rows(self) -> list[dict[str, Any]]:
        """The live log's rows as shown: path, status, token cell, row class, client and
        instance cell (None where the log shows no instance column)."""
        return list(
            self.driver.execute_script(
                """return Array.from(document.querySelectorAll('#log-rows tr'), (tr) => ({
                    path: tr.querySelector('.path').textContent,
                    status: tr.querySelector('.status').textContent,
                    token: tr.querySelector('.token').textContent, cls: tr.className,
                    client: tr.querySelector('.client').textContent,
                    instance: tr.querySelector('.instance')?.textContent ?? null,
                    rejected: tr.querySelector('.status').classList.contains('rejected')}));"""
            )
        )

    def requests_sent(self) -> list[str]:
        """Every URL the page has asked for so far."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.network.append(message)
        return [m["params"]["request"]["url"] for m in self.network]

    # -- the mock, through real clients -------------------------------------------------------

    def imds_get(self, path: str, *, token: bool = True) -> tuple[int, bytes]:
        """GET ``path`` on the IMDS listener, with a fresh IMDSv2 token unless told not to."""
        headers = {}
        if token:
            status, value = _http(
                self.imds,
                "PUT",
                "/latest/api/token",
                None,
                {"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            )
            assert status == 200
            headers["X-aws-ec2-metadata-token"] = value.decode()
        return _http(self.imds, "GET", path, None, headers)

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One control API request (with the token, if any); status and decoded JSON."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        status, raw = _http(self.control, "GET" if method == "GET" else method, path, data, headers)
        return status, json.loads(raw)

    def curl(self, path: str, *extra: str) -> None:
        """Run the real ``curl`` against the IMDS listener (token-less unless ``extra`` says)."""
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", *extra, self.imds + path], check=True, timeout=10
        )

    # -- what the browser logged -----------------------------------------------------------

    def check_logs(self) -> None:
        """No console error (but those allowed), nothing asked of another origin, no token
        in any URL the page asked for."""
        errors = [
            e["message"]
            for e in self.driver.get_log("browser")
            if e["level"] == "SEVERE"
            and not any(allowed in e["message"] for allowed in self.allowed_console)
        ]
        assert errors == [], errors
        origin = urlsplit(self.control)
        for url in self.requests_sent():
            parts = urlsplit(url)
            if parts.scheme in ("data", "about"):
                continue
            assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
            if self.token:
                assert self.token not in url, url


def _http(
    base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextlib.contextmanager
def opened(driver: WebDriver, control: str, imds: str, token: str | None = None) -> Iterator[Page]:
    """A Page on this mock; its logs are checked when the test passes."""
    driver.get("about:blank")
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get_log("performance")
    page = Page(driver, control.rstrip("/"), imds.rstrip("/"), token)
    try:
        yield page
        page.check_logs()
    finally:
        driver.get("about:blank")  # stop the page's polling before its mock stops
