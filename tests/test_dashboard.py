"""The dashboard, driven in a real headless browser (Debian's chromium and chromedriver).

Each test loads the page from a real mock (MockIMDS, or the ``imdsmock`` command), acts as a
user would (clicks, keys, forms) and checks the effect where a client sees it: the IMDS
answer, fetched with a real client, or the control API. Every test also checks that the
browser console logged no error and that the page asked nothing of another origin and never
put the control token in a URL. Screenshots of the views land in ``build/screenshots``
(ignored by git). The page of a fleet is tested in tests/test_dashboard_fleet.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from imdsmock.api import MockIMDS
from mockprocess import mock_process

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip(
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

from dashpage import (  # noqa: E402
    INSTANCE_ID,
    NARROW,
    NOTICE,
    Page,
    chromium,
    opened,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module, logging the console and the network."""
    with chromium(CHROMIUM or "", CHROMEDRIVER or "") as driver:
        yield driver


@pytest.fixture
def mock() -> Iterator[MockIMDS]:
    """The default instance on a manual clock."""
    with MockIMDS() as m:
        yield m


@pytest.fixture
def page(browser: WebDriver, mock: MockIMDS) -> Iterator[Page]:
    """The dashboard of ``mock``, not loaded yet."""
    assert mock.control_url is not None
    with opened(browser, mock.control_url, mock.url) as p:
        yield p


def identity(page: Page) -> dict[str, str]:
    """The identity card as label -> value."""
    return dict(
        page.driver.execute_script(
            """return Array.from(document.querySelectorAll('#identity dt'),
                (dt) => [dt.textContent, dt.nextElementSibling.textContent]);"""
        )
    )


def headline(page: Page) -> str:
    """The header line, once the identity has loaded."""
    return str(
        page.wait(
            lambda: INSTANCE_ID in page.by_id("headline").text and page.by_id("headline").text,
            what="the instance-id",
        )
    )


# -- instance ---------------------------------------------------------------------------------


def test_page_shows_the_instance_identity(page: Page) -> None:
    """Once loaded, the page shows the instance-id, type and zone as text."""
    page.open("instance")
    line = headline(page)
    assert "m4.xlarge" in line
    assert "us-east-1a" in line
    identity = page.by_id("identity").text
    assert INSTANCE_ID in identity
    assert "baskinc-role" in identity
    assert page.driver.title == f"imdsmock · {INSTANCE_ID}"
    page.shot("instance")


def test_page_from_the_imdsmock_command_shows_the_instance(browser: WebDriver) -> None:
    """The page served by the ``imdsmock`` command (system clock) loads and shows the instance."""
    with mock_process() as proc:
        control = f"http://127.0.0.1:{proc.control_port}"
        with opened(browser, control, f"http://127.0.0.1:{proc.port}") as page:
            page.open("timeline")
            headline(page)
            page.wait(lambda: "system" in page.by_id("clock").text, what="the clock kind")
            assert not page.by_id("clock-system").get_attribute("hidden")
            assert page.by_id("clock-manual").get_attribute("hidden") is not None


def test_edits_to_identity_paths_show_in_the_page(page: Page, mock: MockIMDS) -> None:
    """The identity shows what IMDS serves, edits included."""
    mock.set_metadata("meta-data/instance-id", "i-0aaaaaaaaaaaaaaaa")
    page.open("instance")
    page.wait(lambda: "i-0aaaaaaaaaaaaaaaa" in page.by_id("headline").text, what="the edited id")
    assert identity(page)["public IPv4"] == "192.0.2.54"
    mock.delete_metadata("meta-data/public-ipv4")
    page.wait(lambda: identity(page)["public IPv4"] == "—", what="no public IPv4")


def test_http_tokens_switch_makes_token_less_requests_rejected(page: Page) -> None:
    """Switching http-tokens to required: the next token-less request shows as rejected (401)."""
    page.open("instance")
    headline(page)
    switch = page.by_id("opt-http-tokens")
    assert switch.get_attribute("aria-checked") == "false"
    switch.click()
    assert page.result("options-result") == "http-tokens is required"
    assert page.api("GET", "/v1/options")[1]["http-tokens"] == "required"
    page.wait(lambda: switch.get_attribute("aria-checked") == "true", what="the switch")
    page.tab("Requests")
    page.curl("/latest/meta-data/local-ipv4")
    row = page.wait(
        lambda: next(
            (r for r in page.log_rows() if r["path"] == "/latest/meta-data/local-ipv4"), None
        ),
        seconds=2,
        what="the token-less request in the log",
    )
    assert row["status"] == "401"
    assert row["rejected"]
    assert "v1" in row["cls"]
    page.shot("requests-rejected")


def test_option_switches_and_hop_limit_change_the_options(page: Page) -> None:
    """Each option switch flips its option, and the hop-limit form sets the hop limit."""
    page.open("instance")
    headline(page)
    page.by_id("opt-http-endpoint").click()
    assert page.result("options-result") == "http-endpoint is disabled"
    assert page.imds_get("/latest/meta-data/instance-id", token=False)[0] == 403
    page.by_id("opt-http-endpoint").click()
    page.wait(
        lambda: page.by_id("options-result").text == "http-endpoint is enabled", what="enabled"
    )
    page.by_id("opt-instance-metadata-tags").click()
    page.wait(
        lambda: page.by_id("options-result").text == "instance-metadata-tags is disabled",
        what="tags off",
    )
    hop = page.by_id("hop-limit")
    hop.clear()
    hop.send_keys("3")
    page.button("Set hop limit").click()
    page.wait(lambda: page.by_id("options-result").text == "hop-limit is 3", what="hop-limit 3")
    assert page.api("GET", "/v1/options")[1] == {
        "http-tokens": "optional",
        "http-endpoint": "enabled",
        "hop-limit": 3,
        "http-protocol-ipv6": "disabled",
        "instance-metadata-tags": "disabled",
    }


def test_rejected_action_shows_the_api_error_line(page: Page) -> None:
    """A value the API refuses shows the API's one-line error, and nothing changes."""
    page.allowed_console.append("400 (Bad Request)")
    status, answer = page.api("PATCH", "/v1/options", {"hop-limit": 99})
    assert status == 400
    page.open("instance")
    headline(page)
    hop = page.by_id("hop-limit")
    hop.clear()
    hop.send_keys("99")
    hop.send_keys(Keys.ENTER)
    assert page.result("options-result") == answer["error"]
    assert "error" in (page.by_id("options-result").get_attribute("class") or "")
    assert page.api("GET", "/v1/options")[1]["hop-limit"] == 1


def test_credential_buttons_rotate_expire_and_fail(page: Page) -> None:
    """Rotate issues a new set; the expired switch serves a past Expiration; fail fails fetches."""
    role = "/latest/meta-data/iam/security-credentials/baskinc-role"
    before = json.loads(page.imds_get(role)[1])
    page.open("instance")
    headline(page)
    page.button("Rotate credentials").click()
    assert page.result("creds-result") == "New credentials issued"
    after = json.loads(page.imds_get(role)[1])
    assert after["AccessKeyId"] != before["AccessKeyId"]
    page.by_id("creds-expire").click()
    page.wait(
        lambda: page.by_id("creds-result").text == "Serving expired credentials", what="expired"
    )
    assert page.api("GET", "/v1/state")[1]["credentials"]["expired"] is True
    count = page.by_id("creds-fail-count")
    count.clear()
    count.send_keys("2")
    page.button("Fail credential fetches").click()
    page.wait(
        lambda: page.by_id("creds-result").text == "The next 2 credential fetches fail", what="fail"
    )
    assert page.api("GET", "/v1/state")[1]["credentials"]["failing"] == 2
    assert json.loads(page.imds_get(role)[1])["Code"] == "AssumeRoleUnauthorizedAccess"


# -- requests ---------------------------------------------------------------------------------


def test_curl_request_appears_in_the_live_log_within_two_seconds(page: Page) -> None:
    """A curl to IMDS shows in the live log, with its path, within two seconds."""
    page.open("requests")
    headline(page)
    time.sleep(0.5)  # the log's long poll is waiting now
    page.curl("/latest/meta-data/placement/availability-zone", "-A", "curl-from-test")
    row = page.wait(
        lambda: next(
            (
                r
                for r in page.log_rows()
                if r["path"] == "/latest/meta-data/placement/availability-zone"
            ),
            None,
        ),
        seconds=2,
        what="the curl request in the log",
    )
    assert row["status"] == "200"
    assert "v1" in row["cls"]
    assert "curl-from-test" in page.by_id("log-rows").text
    page.wait(lambda: "curl-from-test" in page.by_id("v1-chart").text, what="the IMDSv1 report")
    page.shot("requests")


def test_log_filters_pause_and_clear(page: Page) -> None:
    """The IMDSv1 filter hides token requests; pause holds new rows; clear empties the log."""
    page.imds_get("/latest/meta-data/ami-id")
    page.curl("/latest/meta-data/mac")
    page.open("requests")
    page.wait(lambda: len(page.log_rows()) == 3, what="three rows")  # PUT token, GET, GET
    page.driver.find_element(By.NAME, "imdsv1").click()
    page.wait(
        lambda: [r["path"] for r in page.log_rows()] == ["/latest/meta-data/mac"], what="v1 only"
    )
    page.driver.find_element(By.NAME, "imdsv1").click()
    page.button("Pause").click()
    page.curl("/latest/meta-data/hostname")
    page.wait(lambda: "1 new while paused" in page.by_id("log-summary").text, what="held rows")
    assert all(r["path"] != "/latest/meta-data/hostname" for r in page.log_rows())
    page.button("Resume").click()
    page.wait(lambda: page.log_rows()[0]["path"] == "/latest/meta-data/hostname", what="resumed")
    page.button("Clear log").click()
    assert page.result("log-result") == "Request log cleared"
    assert page.log_rows() == []
    assert page.api("GET", "/v1/requests")[1]["requests"] == []


def test_imdsv1_report_draws_a_bar_per_client_and_user_agent(page: Page) -> None:
    """The IMDSv1 report is an SVG chart with served and rejected bars per user agent."""
    page.curl("/latest/meta-data/instance-id", "-A", "legacy-agent/1.0")
    page.curl("/latest/meta-data/instance-type", "-A", "legacy-agent/1.0")
    page.curl("/latest/meta-data/ami-id", "-A", "other-agent/2.0")
    page.api("PATCH", "/v1/options", {"http-tokens": "required"})
    page.curl("/latest/meta-data/ami-id", "-A", "other-agent/2.0")
    page.open("requests")
    page.wait(lambda: "other-agent/2.0" in page.by_id("v1-chart").text, what="the chart")
    bars = page.driver.find_elements(By.CSS_SELECTOR, "#v1-chart svg rect")
    assert len(bars) == 4  # served and rejected, for each of the two user agents
    text = page.by_id("v1-chart").text
    assert "legacy-agent/1.0: 2 (2 served, 0 rejected)" in text
    assert "other-agent/2.0: 2 (1 served, 1 rejected)" in text
    page.shot("imdsv1-report")


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_tree_shows_a_leaf_and_a_curl_command_that_fetches_it(page: Page) -> None:
    """Browsing to a leaf shows its value as served, and its curl command (IMDSv2) prints it."""
    page.open("metadata")
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#tree summary"), what="tree")
    page.driver.find_element(
        By.CSS_SELECTOR, "#tree details[data-path='meta-data'] > summary"
    ).click()
    page.wait(
        lambda: page.driver.find_elements(By.CSS_SELECTOR, "[data-path='meta-data/placement']"),
        what="folders",
    )
    page.driver.find_element(
        By.CSS_SELECTOR, "details[data-path='meta-data/placement'] > summary"
    ).click()
    leaf = page.wait(
        lambda: page.driver.find_elements(
            By.CSS_SELECTOR, "button[data-path='meta-data/placement/availability-zone']"
        ),
        what="the leaf",
    )[0]
    leaf.click()
    page.wait(lambda: page.by_id("leaf-value").text == "us-east-1a", what="the value")
    command = page.by_id("leaf-curl").get_attribute("value") or ""
    assert "X-aws-ec2-metadata-token" in command
    printed = subprocess.run(
        ["bash", "-c", command], check=False, capture_output=True, text=True, timeout=10
    )
    assert printed.stdout == "us-east-1a"
    assert page.imds_get("/latest/meta-data/placement/availability-zone")[1] == b"us-east-1a"
    page.shot("metadata")


def test_edit_form_sets_and_deletes_a_metadata_path(page: Page) -> None:
    """Set value serves the value at the path; Delete path makes it 404; Reset drops edits."""
    tag = "/latest/meta-data/tags/instance/Owner"
    page.open("metadata")
    headline(page)
    page.by_id("edit-path").send_keys("meta-data/tags/instance/Owner")
    page.by_id("edit-value").send_keys("alice")
    page.button("Set value").click()
    assert page.result("edit-result") == "meta-data/tags/instance/Owner now serves the new value"
    assert page.imds_get(tag) == (200, b"alice")
    page.wait(
        lambda: "meta-data/tags/instance/Owner = alice" in page.by_id("edits").text, what="edit"
    )
    page.button("Delete path").click()
    page.wait(lambda: "no longer served" in page.by_id("edit-result").text, what="deleted")
    assert page.imds_get(tag)[0] == 404
    page.button("Reset all edits").click()
    page.wait(lambda: "Every edit dropped" in page.by_id("edit-result").text, what="reset")
    assert page.api("GET", "/v1/metadata")[1] == {"metadata": {}}


# -- timeline, scenarios, clock ---------------------------------------------------------------


def test_spot_interruption_button_serves_the_notice(page: Page) -> None:
    """Pressing "Spot interruption" with the defaults makes IMDS serve the terminate notice."""
    page.open("timeline")
    headline(page)
    assert page.imds_get(NOTICE)[0] == 404
    page.button("Spot interruption").click()
    assert page.result("start-result").startswith("Started spot-interruption ")
    status, body = page.imds_get(NOTICE)
    assert status == 200
    assert json.loads(body)["action"] == "terminate"
    page.wait(lambda: "instance terminate time" in page.by_id("upcoming").text, what="upcoming")
    assert page.driver.find_elements(By.CSS_SELECTOR, "#timeline-chart svg circle")
    page.shot("timeline")


def test_advance_button_brings_a_scheduled_notice_into_force(page: Page) -> None:
    """A spot interruption 60 s ahead is upcoming; "+1 min" on the manual clock serves it."""
    page.open("timeline")
    headline(page)
    form = page.driver.find_element(By.CSS_SELECTOR, "form[data-scenario='spot-interruption']")
    form.find_element(By.NAME, "action").send_keys("stop")
    delay = form.find_element(By.NAME, "delay")
    delay.clear()
    delay.send_keys("60")
    page.button("Spot interruption").click()
    page.result("start-result")
    page.wait(
        lambda: "spot interruption notice (stop)" in page.by_id("upcoming").text,
        what="the notice upcoming",
    )
    assert page.imds_get(NOTICE)[0] == 404
    page.button("+1 min").click()
    page.wait(lambda: "The clock is at" in page.by_id("clock-result").text, what="advanced")
    status, body = page.imds_get(NOTICE)
    assert (status, json.loads(body)["action"]) == (200, "stop")
    page.button("Reset clock").click()
    page.wait(lambda: "back at" in page.by_id("clock-result").text, what="reset")
    assert page.imds_get(NOTICE)[0] == 404


def test_other_scenario_buttons_and_cancel(page: Page) -> None:
    """Rebalance, maintenance event and ASG lifecycle start from their forms; Cancel ends one."""
    page.open("timeline")
    headline(page)
    page.button("Rebalance recommendation").click()
    page.wait(
        lambda: "rebalance-recommendation" in page.by_id("start-result").text, what="rebalance"
    )
    assert page.imds_get("/latest/meta-data/events/recommendations/rebalance")[0] == 200
    page.button("Maintenance event").click()
    page.wait(lambda: "maintenance-event" in page.by_id("start-result").text, what="event")
    events = json.loads(page.imds_get("/latest/meta-data/events/maintenance/scheduled")[1])
    assert events[0]["Code"] == "system-reboot"
    form = page.driver.find_element(By.CSS_SELECTOR, "form[data-scenario='asg-lifecycle']")
    form.find_element(By.NAME, "state").send_keys("Terminated")
    page.button("ASG lifecycle").click()
    page.wait(lambda: "asg-lifecycle" in page.by_id("start-result").text, what="asg")
    target = "/latest/meta-data/autoscaling/target-lifecycle-state"
    assert page.imds_get(target) == (200, b"Terminated")
    scenarios = page.api("GET", "/v1/scenarios")[1]["scenarios"]
    asg = next(s["id"] for s in scenarios if s["type"] == "asg-lifecycle")
    page.wait(lambda: asg in page.by_id("scenarios").text, what="the list")
    page.driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Cancel {asg}']").click()
    page.wait(lambda: page.by_id("scenarios-result").text == f"Cancelled {asg}", what="cancel")
    assert page.imds_get(target)[0] == 404


# -- faults -----------------------------------------------------------------------------------


def test_fault_form_adds_a_fault_and_remove_takes_it_away(page: Page) -> None:
    """Add fault makes matching requests fail with its status; Remove serves them again."""
    path = "/latest/meta-data/instance-type"
    page.open("faults")
    headline(page)
    form = page.by_id("fault-form")
    form.find_element(By.NAME, "status").send_keys("503")
    form.find_element(By.NAME, "path").send_keys("*instance-type")
    page.button("Add fault").click()
    assert page.result("fault-result").startswith("Added status fault ")
    assert page.imds_get(path, token=False)[0] == 503
    fault = page.api("GET", "/v1/faults")[1]["faults"][0]["id"]
    page.wait(lambda: fault in page.by_id("fault-list").text, what="the fault listed")
    page.shot("faults")
    page.driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Remove {fault}']").click()
    page.wait(lambda: page.by_id("faults-result").text == f"Removed {fault}", what="removed")
    assert page.imds_get(path, token=False) == (200, b"m4.xlarge")


# -- the control token ------------------------------------------------------------------------


def test_without_the_control_token_the_page_can_do_nothing(browser: WebDriver) -> None:
    """With a control token set, the page asks for it; without it no action gets through."""
    secret = "dashboard-test-token"
    with mock_process(["--control-token", secret]) as proc:
        control = f"http://127.0.0.1:{proc.control_port}"
        with opened(browser, control, f"http://127.0.0.1:{proc.port}", token=secret) as page:
            page.allowed_console.append("401 (Unauthorized)")
            page.open("timeline")
            dialog = page.by_id("token-dialog")
            page.wait(lambda: dialog.get_attribute("open") is not None, what="the token dialog")
            assert INSTANCE_ID not in page.text()
            page.button("Cancel").click()
            page.button("Spot interruption").click()
            page.wait(lambda: "bearer token" in page.by_id("start-result").text, what="the refusal")
            page.wait(lambda: dialog.get_attribute("open") is not None, what="the dialog again")
            assert page.api("GET", "/v1/scenarios")[1] == {"scenarios": []}
            page.by_id("token-input").send_keys("wrong-token" + Keys.ENTER)
            page.wait(
                lambda: "refused that token" in page.by_id("token-message").text, what="refused"
            )
            page.shot("token")
            page.by_id("token-input").send_keys(secret + Keys.ENTER)
            headline(page)
            page.button("Spot interruption").click()
            page.wait(
                lambda: "Started spot-interruption" in page.by_id("start-result").text, what="ok"
            )
            assert len(page.api("GET", "/v1/scenarios")[1]["scenarios"]) == 1
            stored = page.driver.execute_script(
                "return sessionStorage.getItem('imdsmock-control-token')"
            )
            assert stored == secret
            assert secret not in page.driver.current_url


# -- keyboard and sizes -----------------------------------------------------------------------


def test_keyboard_alone_starts_a_spot_interruption(page: Page) -> None:
    """Tab, arrow keys and Enter reach the Timeline view and press "Spot interruption"."""
    page.open("instance")
    headline(page)
    actions = webdriver.ActionChains(page.driver)
    page.by_id("tab-instance").send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    page.wait(
        lambda: page.driver.switch_to.active_element.get_attribute("id") == "tab-timeline",
        what="tab",
    )
    assert not page.by_id("view-timeline").get_attribute("hidden")
    for _ in range(40):
        active = page.driver.switch_to.active_element
        if active.text == "Spot interruption":
            break
        actions.send_keys(Keys.TAB).perform()
    else:
        raise AssertionError("Tab never reached the Spot interruption button")
    actions.send_keys(Keys.ENTER).perform()
    page.wait(
        lambda: "Started spot-interruption" in page.by_id("start-result").text, what="started"
    )
    assert page.imds_get(NOTICE)[0] == 200


@pytest.mark.parametrize("view", ["instance", "requests", "metadata", "timeline", "faults"])
def test_each_view_fits_a_narrow_window(page: Page, view: str) -> None:
    """At 390 px wide no view scrolls sideways, and the view still shows its buttons."""
    page.open(view, size=NARROW)
    headline(page)
    time.sleep(0.3)
    width = page.driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
    assert page.driver.find_elements(By.CSS_SELECTOR, f"#view-{view} button")
    page.shot(f"narrow-{view}")
