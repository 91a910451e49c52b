"""The dashboard of a fleet, driven in a real headless browser (Debian's chromium).

A real mock serves three instances (the default one, ``web`` for clients from 127.0.0.2 and
``worker`` for 127.0.0.3); real clients make their requests from those loopback source
addresses (``MockIMDS.get(path, source=...)``, curl ``--interface``). Each test acts in the
page as a user would and checks what the page shows and what each instance's clients are
served. Without instances the page is the single instance's: tested last, and in
tests/test_dashboard.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imdsmock.api import MockIMDS
from mockprocess import mock_process
from test_fleet_config import FLEET_YAML

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytest.importorskip(
    "selenium.webdriver", reason="needs selenium (the test extra: pip install -e '.[test]')"
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; scripts/test installs them)",
    ),
]

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from dashpage import INSTANCE_ID, NARROW, NOTICE, Page, chromium, opened  # noqa: E402

WEB_ID = "i-0aaaaaaaaaaaaaaa1"
WORKER_ID = "i-0bbbbbbbbbbbbbbb2"
WEB = {
    "name": "web",
    "match": {"source": ["127.0.0.2"]},
    "instance": {"instance-id": WEB_ID, "iam-role": "web-role"},
}
WORKER = {
    "name": "worker",
    "match": {"source": ["127.0.0.3/32"]},
    "instance": {"instance-id": WORKER_ID, "iam-role": "worker-role"},
    "options": {"http-tokens": "required"},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module, logging the console and the network."""
    with chromium(CHROMIUM or "", CHROMEDRIVER or "") as driver:
        yield driver


@pytest.fixture
def fleet() -> Iterator[MockIMDS]:
    """A mock serving the default instance, web (127.0.0.2) and worker (127.0.0.3)."""
    with MockIMDS(instances=[WEB, WORKER]) as m:
        yield m


@pytest.fixture
def page(browser: WebDriver, fleet: MockIMDS) -> Iterator[Page]:
    """The dashboard of ``fleet``, not loaded yet."""
    assert fleet.control_url is not None
    with opened(browser, fleet.control_url, fleet.url) as p:
        yield p


def fleet_rows(page: Page) -> dict[str, dict[str, Any]]:
    """The Fleet view's table as shown: name -> its cells' text."""
    rows = page.driver.execute_script(
        """return Array.from(document.querySelectorAll('#fleet-rows tr'), (tr) => {
            const cells = Array.from(tr.children, (c) => c.textContent);
            return {name: cells[0], id: cells[1], role: cells[2], match: cells[3],
                    scenarios: cells[4], requests: cells[5], clients: cells[6],
                    live: tr.querySelectorAll('.running .live').length,
                    chosen: tr.classList.contains('chosen')};
        });"""
    )
    return {row["name"]: row for row in rows}


def client_rows(page: Page) -> list[list[str]]:
    """The clients table of the chosen instance, as shown."""
    return list(
        page.driver.execute_script(
            """return Array.from(document.querySelectorAll('#client-rows tr'),
                (tr) => Array.from(tr.children, (c) => c.textContent));"""
        )
    )


def identity(page: Page) -> dict[str, str]:
    """The identity card as label -> value."""
    return dict(
        page.driver.execute_script(
            """return Array.from(document.querySelectorAll('#identity dt'),
                (dt) => [dt.textContent, dt.nextElementSibling.textContent]);"""
        )
    )


def showing(page: Page, name: str, instance_id: str) -> str:
    """Wait until the header shows instance ``name`` with its instance-id; the header."""
    return str(
        page.wait(
            lambda: (
                page.by_id("headline").text.startswith(f"{name} · {instance_id}")
                and page.by_id("headline").text
            ),
            what=f"{name} in the header",
        )
    )


def test_fleet_view_lists_each_instance_its_rule_scenarios_and_requests(
    page: Page, fleet: MockIMDS
) -> None:
    """Opened on a fleet, the page starts on the Fleet view: one row per instance with its
    instance-id, role, the rule that recognises its clients, what its scenarios serve now,
    and how many requests and clients it had."""
    assert fleet.get("/latest/meta-data/instance-id", source="127.0.0.2").text == WEB_ID
    assert fleet.get("/latest/meta-data/ami-id", source="127.0.0.2").status == 200
    assert fleet.get("/latest/meta-data/instance-id", source="127.0.0.3", token=False).status == 401
    assert fleet.get("/latest/meta-data/instance-id").text == INSTANCE_ID
    fleet.instance("worker").spot_interruption()
    page.open("")
    page.wait(lambda: len(fleet_rows(page)) == 3, what="three instances")
    assert page.by_id("tab-fleet").get_attribute("aria-selected") == "true"
    rows = page.wait(lambda: (r := fleet_rows(page))["worker"]["live"] and r, what="the notice")
    assert [(r["id"], r["role"]) for r in rows.values()] == [
        (INSTANCE_ID, "baskinc-role"),
        (WEB_ID, "web-role"),
        (WORKER_ID, "worker-role"),
    ]
    assert rows["default"]["match"] == "any client no rule matches"
    assert rows["web"]["match"] == "source 127.0.0.2"
    assert rows["worker"]["match"] == "source 127.0.0.3/32"
    assert "spot interruption notice (terminate)" in rows["worker"]["scenarios"]
    assert rows["web"]["scenarios"] == rows["default"]["scenarios"] == "none"
    # Each request with a token is two in the log: the token's PUT and the GET.
    assert [(r["requests"], r["clients"]) for r in rows.values()] == [
        ("2", "1"),
        ("4", "1"),
        ("1", "1"),
    ]
    assert page.by_id("instance-picker").is_displayed()
    page.shot("fleet")


def test_choosing_an_instance_shows_its_identity_credentials_and_options(page: Page) -> None:
    """The instance the address names is shown in every view; the header's picker shows
    another: identity, credentials and options are that instance's."""
    page.open("instance/web")
    line = showing(page, "web", WEB_ID)
    assert "m4.xlarge" in line
    page.wait(lambda: identity(page).get("IAM role") == "web-role", what="web's role")
    assert "web-role" in page.by_id("credentials").text
    assert page.driver.title == f"imdsmock · web · {WEB_ID}"
    assert page.by_id("opt-http-tokens").text == "optional"
    Select(page.by_id("instance-select")).select_by_value("worker")
    showing(page, "worker", WORKER_ID)
    page.wait(lambda: identity(page).get("IAM role") == "worker-role", what="worker's role")
    page.wait(lambda: page.by_id("opt-http-tokens").text == "required", what="worker's option")
    assert page.driver.current_url.endswith("#instance/worker")
    page.shot("fleet-instance")
    Select(page.by_id("instance-select")).select_by_value("default")
    showing(page, "default", INSTANCE_ID)
    page.wait(lambda: identity(page).get("IAM role") == "baskinc-role", what="the default role")


def test_an_option_switched_in_the_page_changes_that_instance_only(
    page: Page, fleet: MockIMDS
) -> None:
    """With web shown, the http-tokens switch makes web's token-less clients 401; the
    default instance's clients are still served without a token."""
    page.open("instance/web")
    showing(page, "web", WEB_ID)
    page.by_id("opt-http-tokens").click()
    assert page.result("options-result") == "http-tokens is required"
    assert fleet.get("/latest/meta-data/instance-id", source="127.0.0.2", token=False).status == 401
    assert fleet.get("/latest/meta-data/instance-id", token=False).status == 200


def test_spot_interruption_started_in_the_page_reaches_one_instance_only(
    page: Page, fleet: MockIMDS
) -> None:
    """Chosen in the Fleet view, then "Spot interruption" on the Timeline: web's client is
    served the notice, the others are not; the Fleet view shows it live on web; Cancel
    takes it away."""
    page.open("fleet")
    page.wait(lambda: "web" in fleet_rows(page), what="the instances")
    page.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Show web']").click()
    page.wait(lambda: fleet_rows(page)["web"]["chosen"], what="web chosen")
    page.tab("Timeline")
    page.button("Spot interruption").click()
    result = page.result("start-result")
    assert result.startswith("Started spot-interruption ")
    assert result.endswith(" on web")
    answer = fleet.get(NOTICE, source="127.0.0.2")
    assert (answer.status, json.loads(answer.text)["action"]) == (200, "terminate")
    assert fleet.get(NOTICE).status == 404
    assert fleet.get(NOTICE, source="127.0.0.3").status == 404
    scenario = fleet.instance("web").scenarios[0]["id"]
    page.wait(lambda: scenario in page.by_id("scenarios").text, what="web's scenario listed")
    page.tab("Fleet")
    page.wait(lambda: fleet_rows(page)["web"]["live"] == 1, what="the notice live on web")
    rows = fleet_rows(page)
    assert rows["default"]["live"] == rows["worker"]["live"] == 0
    page.tab("Timeline")
    page.driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Cancel {scenario}']").click()
    page.wait(
        lambda: page.by_id("scenarios-result").text == f"Cancelled {scenario} on web",
        what="cancelled",
    )
    assert fleet.get(NOTICE, source="127.0.0.2").status == 404


def test_clients_view_says_which_clients_matched_and_why(page: Page, fleet: MockIMDS) -> None:
    """The Fleet view lists the chosen instance's clients with the rule that matched each;
    the default instance's are those no rule matched."""
    fleet.get("/latest/meta-data/instance-id", source="127.0.0.2")
    fleet.get("/latest/meta-data/instance-id")
    page.open("fleet/web")
    rows = page.wait(lambda: client_rows(page), what="web's clients")
    assert [row[:3] for row in rows] == [["127.0.0.2", "source 127.0.0.2", "2"]]
    assert page.by_id("clients-of").text == "web"
    page.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Show default']").click()
    page.wait(
        lambda: [r[:2] for r in client_rows(page)] == [["127.0.0.1", "no rule matched"]],
        what="the default instance's client",
    )
    page.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Show worker']").click()
    page.wait(
        lambda: "No client has been served as worker yet" in page.by_id("client-rows").text,
        what="no client of worker",
    )
    fleet.get("/latest/meta-data/instance-id", source="127.0.0.3")
    page.wait(lambda: client_rows(page)[0][:2] == ["127.0.0.3", "source 127.0.0.3/32"], what="it")


def test_request_log_shows_each_requests_instance_and_filters_by_it(
    page: Page, fleet: MockIMDS
) -> None:
    """Each row of the live log names the instance that answered; the instance filter shows
    one instance's requests, and the IMDSv1 report follows it."""
    page.open("requests")
    page.wait(lambda: page.by_id("log-instance-filter").is_displayed(), what="the filter")
    fleet.get("/latest/meta-data/instance-id", source="127.0.0.2", token=False)
    fleet.get("/latest/meta-data/instance-id", source="127.0.0.3", token=False)
    fleet.get("/latest/meta-data/ami-id", token=False)
    page.wait(lambda: len(page.log_rows()) == 3, what="three rows")
    shown = [(r["client"], r["instance"], r["status"]) for r in page.log_rows()]
    assert shown == [
        ("127.0.0.1", "default", "200"),
        ("127.0.0.3", "worker", "401"),
        ("127.0.0.2", "web", "200"),
    ]
    page.wait(lambda: "worker · 127.0.0.3" in page.by_id("v1-chart").text, what="the report")
    Select(page.driver.find_element(By.NAME, "instance")).select_by_value("worker")
    page.wait(lambda: len(page.log_rows()) == 1, what="worker's row alone")
    assert page.log_rows()[0]["client"] == "127.0.0.3"
    chart = page.by_id("v1-chart").text
    assert "127.0.0.3" in chart
    assert "127.0.0.2" not in chart
    assert "127.0.0.1" not in chart
    page.shot("fleet-requests")


def test_request_count_opens_that_instances_requests(page: Page, fleet: MockIMDS) -> None:
    """The request count in the Fleet view opens the log filtered to that instance."""
    fleet.get("/latest/meta-data/instance-id", source="127.0.0.2")
    fleet.get("/latest/meta-data/instance-id")
    page.open("fleet")
    button = page.wait(
        lambda: page.driver.find_elements(
            By.CSS_SELECTOR, "button[aria-label='Requests of web: 2']"
        ),
        what="web's count",
    )[0]
    button.click()
    page.wait(lambda: not page.by_id("view-requests").get_attribute("hidden"), what="the log")
    page.wait(lambda: len(page.log_rows()) == 2, what="web's two rows")
    assert {r["instance"] for r in page.log_rows()} == {"web"}
    showing(page, "web", WEB_ID)


def test_metadata_curl_of_an_instance_is_answered_as_that_instance(page: Page) -> None:
    """The metadata tree of web shows web's value, and its curl command is sent from web's
    source address, so running it prints web's instance-id."""
    page.open("metadata/web")
    showing(page, "web", WEB_ID)
    page.driver.find_element(
        By.CSS_SELECTOR, "#tree details[data-path='meta-data'] > summary"
    ).click()
    leaf = page.wait(
        lambda: page.driver.find_elements(
            By.CSS_SELECTOR, "button[data-path='meta-data/instance-id']"
        ),
        what="the leaf",
    )[0]
    leaf.click()
    page.wait(lambda: page.by_id("leaf-value").text == WEB_ID, what="web's value")
    command = page.by_id("leaf-curl").get_attribute("value") or ""
    assert "--interface 127.0.0.2" in command
    assert "as a client of web (from 127.0.0.2)" in page.text()
    printed = subprocess.run(
        ["bash", "-c", command], check=False, capture_output=True, text=True, timeout=10
    )
    assert printed.stdout == WEB_ID


def test_an_instance_named_that_the_fleet_lacks_shows_the_default(page: Page) -> None:
    """An address naming an instance the fleet does not have shows the default instance
    and says so."""
    page.open("instance/nosuch")
    showing(page, "default", INSTANCE_ID)
    assert "No instance named nosuch" in page.by_id("fleet-result").get_attribute("textContent")


def test_an_instance_removed_meanwhile_falls_back_to_the_default(
    page: Page, fleet: MockIMDS
) -> None:
    """The page shows web; web is removed through the API; the page shows the default
    instance and says why."""
    page.open("fleet/web")
    showing(page, "web", WEB_ID)
    page.allowed_console.append("404 (Not Found)")
    fleet.remove_instance("web")
    showing(page, "default", INSTANCE_ID)
    page.wait(lambda: "web" not in fleet_rows(page), what="web gone from the list")
    assert "web is no longer served" in page.by_id("fleet-result").text


def test_fleet_view_fits_a_narrow_window(page: Page) -> None:
    """At 390 px wide the Fleet view does not scroll sideways and shows its buttons."""
    page.open("fleet", size=NARROW)
    page.wait(lambda: len(fleet_rows(page)) == 3, what="the instances")
    width = page.driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
    page.shot("narrow-fleet")


def test_without_instances_the_page_shows_no_fleet_and_asks_nothing_of_it(
    browser: WebDriver,
) -> None:
    """A single instance: no Fleet tab, picker or instance column; the page never asks the
    fleet routes (which would make the mock a fleet of one)."""
    with MockIMDS() as mock:
        assert mock.control_url is not None
        with opened(browser, mock.control_url, mock.url) as single:
            single.open("requests")
            single.wait(lambda: INSTANCE_ID in single.by_id("headline").text, what="the id")
            mock.get("/latest/meta-data/instance-id")
            single.wait(lambda: len(single.log_rows()) == 2, what="two rows")
            assert {r["instance"] for r in single.log_rows()} == {None}
            for hidden in ("tab-fleet", "instance-picker", "log-instance-filter"):
                assert not single.by_id(hidden).is_displayed(), hidden
            assert not [u for u in single.requests_sent() if "/v1/instances" in u]
            assert mock.app.fleet is None


def test_an_instance_added_meanwhile_is_listed_and_its_curl_names_its_host(
    page: Page, fleet: MockIMDS
) -> None:
    """An instance added through the API while the page is open joins the list and the
    picker; chosen, its curl command asks with its Host name, and prints its instance-id."""
    page.open("fleet")
    page.wait(lambda: len(fleet_rows(page)) == 3, what="three instances")
    fleet.add_instance(
        name="api",
        match={"host": ["api.imds.internal"]},
        instance={"instance-id": "i-0ccccccccccccccc3"},
    )
    rows = page.wait(lambda: (r := fleet_rows(page)).get("api") and r, what="api listed")
    assert rows["api"]["match"] == "host api.imds.internal"
    Select(page.by_id("instance-select")).select_by_value("api")
    page.tab("Metadata")
    showing(page, "api", "i-0ccccccccccccccc3")
    page.driver.find_element(
        By.CSS_SELECTOR, "#tree details[data-path='meta-data'] > summary"
    ).click()
    page.wait(
        lambda: page.driver.find_elements(
            By.CSS_SELECTOR, "button[data-path='meta-data/instance-id']"
        ),
        what="the leaf",
    )[0].click()
    page.wait(lambda: page.by_id("leaf-value").text == "i-0ccccccccccccccc3", what="api's id")
    command = page.by_id("leaf-curl").get_attribute("value") or ""
    assert "-H 'Host: api.imds.internal'" in command
    printed = subprocess.run(
        ["bash", "-c", command], check=False, capture_output=True, text=True, timeout=10
    )
    assert printed.stdout == "i-0ccccccccccccccc3"


def test_a_fleet_behind_a_control_token_shows_nothing_until_the_token_is_given(
    browser: WebDriver, tmp_path: Path
) -> None:
    """``imdsmock -c fleet.yaml --control-token``: the page asks for the token and shows no
    instance; given the token, it lists the fleet; the token is in no URL it asked for."""
    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET_YAML)
    secret = "fleet-dashboard-token"
    with mock_process(["-c", str(config), "--control-token", secret]) as proc:
        control = f"http://127.0.0.1:{proc.control_port}"
        with opened(browser, control, f"http://127.0.0.1:{proc.port}", token=secret) as page:
            page.allowed_console.append("401 (Unauthorized)")
            page.open("fleet/web")
            dialog = page.by_id("token-dialog")
            page.wait(lambda: dialog.get_attribute("open") is not None, what="the token dialog")
            assert not page.by_id("tab-fleet").is_displayed()
            assert fleet_rows(page) == {}
            page.by_id("token-input").send_keys(secret + Keys.ENTER)
            showing(page, "web", WEB_ID)
            page.wait(lambda: len(fleet_rows(page)) == 3, what="the instances")
            assert fleet_rows(page)["web"]["chosen"]


def test_an_instance_the_template_made_is_listed_with_its_client_key(browser: WebDriver) -> None:
    """A client the template covers gets an instance when it first asks; the Fleet view
    lists it as made by the template for the client's key, and it can be shown."""
    with MockIMDS(instances=[WEB], template={"ways": ["source"], "source": ["127.0.0.8/29"]}) as m:
        made = m.get("/latest/meta-data/instance-id", source="127.0.0.9").text
        assert m.control_url is not None
        with opened(browser, m.control_url, m.url) as page:
            page.open("fleet")
            rows = page.wait(lambda: (r := fleet_rows(page)).get("127.0.0.9") and r, what="it")
            assert rows["127.0.0.9"]["id"] == made
            assert rows["127.0.0.9"]["match"] == "made by the template for 127.0.0.9"
            page.driver.find_element(By.CSS_SELECTOR, "button[aria-label='Show 127.0.0.9']").click()
            showing(page, "127.0.0.9", made)
            assert page.driver.current_url.endswith("#fleet/127.0.0.9")
