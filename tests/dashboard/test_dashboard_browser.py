"""The dashboard in headless Chromium: each panel shows what the control API says and every action works.

Each test loads the page fresh on a reset mock, acts as a user would (clicks, typing, Enter), waits (bounded)
for the screen to change, and checks the mock's state through the control API. Screenshots of each panel go
to a temporary folder printed at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mockserver.core.calls import JsonReply
from mockserver.testing.server import ServerThread
from mockserver.testing.webhooks import WebhookReceiver

try:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the same rule as a missing browser (conftest.py): CI fails, elsewhere skip
    if os.environ.get("CI"):
        raise
    pytest.skip("selenium is not installed (pip install -e '.[test]')", allow_module_level=True)

# The dashboard's browser tests drive a page, not the state: a Chromium session per backend would double the
# suite's most expensive tests for no new coverage (the control API the page reads runs on both backends in
# tests/mockserver/test_dashboard_api.py).
pytestmark = pytest.mark.parametrize("state_backend", ["memory"], indirect=True)

WAIT_SECONDS = 20.0
"""How long a step may take to show on screen (generous: the machine may be loaded)."""

SPACEAI = "spaceai"
PAHLAVAN = "pahlavan"
ARTIFICIAL = "artificialstudio"
KITE = {"tool": "create-image", "input": {"prompt": "a red kite"}}
FAKE_CLIPBOARD = (
    "navigator.clipboard.writeText = (text) => { window.copied = text; return Promise.resolve(); }"
)
HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello from the browser test"}]}


class Page:
    """The loaded dashboard: find, wait, act, screenshot."""

    def __init__(self, driver: Any, mock: Any, screenshots: Path) -> None:
        self.driver = driver
        self.mock = mock
        self.screenshots = screenshots

    def find(self, css: str) -> WebElement:
        element: WebElement = self.driver.find_element(By.CSS_SELECTOR, css)
        return element

    def all(self, css: str) -> list[WebElement]:
        found: list[WebElement] = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found

    def wait(self, condition: Callable[[], Any], what: str) -> Any:
        """Poll ``condition`` until it is truthy (elements re-rendered meanwhile are simply retried)."""

        def check(_: Any) -> Any:
            try:
                return condition()
            except StaleElementReferenceException:
                return False

        try:
            return WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.1).until(check)
        except TimeoutException:
            # What the user would see: the page's last message, and a screenshot of the whole page.
            shot = self.screenshots / f"failed-{what.replace(' ', '-')}.png"
            self.driver.save_screenshot(str(shot))
            notice = self.driver.execute_script("return document.querySelector('#notice').textContent")
            raise AssertionError(f"timed out waiting for {what}; notice: {notice!r}; see {shot}") from None

    def click(self, css: str) -> None:
        """Click what ``css`` finds (found again if the table it is in was redrawn meanwhile)."""

        def clicked() -> bool:
            # Centred first: scrolled to the top, the sticky header would take the click.
            target = self.find(css)
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
            target.click()
            return True

        self.wait(clicked, f"a click on {css}")

    def type_into(self, css: str, *keys: str) -> None:
        """Replace the field's text by typing ``keys`` (found again if redrawn before the first key)."""

        def typed() -> bool:
            field = self.find(css)
            field.clear()
            field.send_keys(*keys)
            return True

        self.wait(typed, f"typing into {css}")

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def shoot(self, css: str, name: str) -> None:
        """A screenshot of one panel (the sticky header is unstuck so it covers nothing)."""
        self.driver.execute_script("document.querySelector('.top').style.position = 'static'")
        element = self.find(css)
        self.driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(str(self.screenshots / f"{name}.png"))

    def console_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture
def page(browser: Any, dashboard_server: Any, attach_mock: Any, screenshots: Path) -> Iterator[Page]:
    """The dashboard, opened at ``/`` (the redirect) on a reset mock, listening live."""
    mock = attach_mock(dashboard_server)
    browser.set_window_size(1280, 1000)
    browser.get(f"{mock.base_url}/")
    loaded = Page(browser, mock, screenshots)
    loaded.wait(lambda: browser.execute_script("return document.body.dataset.ready") == "true", "the page")
    loaded.wait(lambda: loaded.text("#live-status") == "live", "the live feed")
    yield loaded
    errors = loaded.console_errors()
    browser.get("about:blank")  # closes the event stream before the mock is reset for the next test
    assert errors == []


def row_with(page: Page, table: str, text: str) -> WebElement | None:
    return next((r for r in page.all(f"{table} tbody tr") if text in r.text), None)


def test_page_loads_clean_and_shows_the_providers(page: Page) -> None:
    assert page.driver.current_url == f"{page.mock.base_url}/_mock/ui"
    assert page.driver.title == "Mock dashboard"
    assert page.console_errors() == []
    listed = page.mock.control("GET", "/providers")["providers"]
    cards = page.all("#provider-list .card")
    assert [c.get_attribute("data-provider") for c in cards] == [p["id"] for p in listed]
    for card, provider in zip(cards, listed, strict=True):
        assert card.find_element(By.CSS_SELECTOR, ".base-url").text == provider["base_url"]
        masked = card.find_element(By.CSS_SELECTOR, ".masked-key").text
        assert masked.endswith(provider["api_key"][-4:])
        assert provider["api_key"] not in card.text  # shown masked; the copy button has the key
        links = [a.get_attribute("href") for a in card.find_elements(By.CSS_SELECTOR, "a")]
        assert links == [f"{provider['base_url']}/openapi.json", f"{provider['base_url']}/openapi.yaml"]
        curl = card.find_element(By.CSS_SELECTOR, ".curl-line").text
        assert curl.startswith(f"curl -s {provider['base_url']}/")
    spec = requests.get(f"{listed[0]['base_url']}/openapi.json", timeout=10)
    assert spec.status_code == 200
    # Every control is labelled: a label around it, an aria-label, or (buttons) its text.
    unlabelled = page.driver.execute_script(
        """return [...document.querySelectorAll('input, select, button')].filter(e =>
             !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()
           ).map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    page.shoot("#providers", "1-providers")


def test_the_curl_line_works_as_copied(page: Page) -> None:
    page.driver.execute_script(FAKE_CLIPBOARD)
    page.click(f"#provider-list .card[data-provider='{SPACEAI}'] .curl button")
    copied = page.wait(lambda: page.driver.execute_script("return window.copied"), "the copied curl line")
    assert page.mock.provider(SPACEAI).api_key in copied
    assert copied.startswith(f"curl -s {page.mock.provider(SPACEAI).base_url}/v1/chat/completions ")
    page.click(f"#provider-list .card[data-provider='{SPACEAI}'] dd button")
    key = page.mock.provider(SPACEAI).api_key
    page.wait(lambda: page.driver.execute_script("return window.copied") == key, "the copied key")


def test_requests_appear_live_and_open_with_their_bodies(page: Page) -> None:
    assert page.mock.post(SPACEAI, "/v1/chat/completions", json=HELLO).status_code == 200
    assert page.mock.get(PAHLAVAN, "/api/v1/models").status_code == 200
    assert page.mock.get(SPACEAI, "/v1/no-such-thing").status_code == 404
    page.wait(lambda: len(page.all("#request-table tbody tr[data-id]")) == 3, "three rows, without reload")
    journal = page.mock.journal()
    shown = [r.get_attribute("data-id") for r in page.all("#request-table tbody tr[data-id]")]
    assert shown == [str(e["id"]) for e in reversed(journal)]
    # Filters: by provider, by status, by operation.
    rows = "#request-table tbody tr[data-id]"
    Select(page.find("#filter-provider")).select_by_value(SPACEAI)
    page.wait(lambda: len(page.all(rows)) == 2, "the provider filter")
    Select(page.find("#filter-status")).select_by_value("4")
    page.wait(lambda: len(page.all(rows)) == 1, "the status filter")
    assert "404" in page.find(rows).text
    Select(page.find("#filter-status")).select_by_value("")
    page.find("#filter-operation").send_keys("createChat")
    page.wait(lambda: len(page.all(rows)) == 1, "the operation filter")
    row = page.find(rows)
    assert "createChatCompletion" in row.text
    page.shoot("#requests", "2-requests")
    # Open it from the keyboard: focus its button, Enter.
    opener = row.find_element(By.CSS_SELECTOR, "button")
    page.driver.execute_script("arguments[0].focus()", opener)
    assert page.driver.switch_to.active_element == opener
    opener.send_keys(Keys.ENTER)
    page.wait(lambda: "Hello from the browser test" in page.text("#detail-body"), "the request body")
    detail = page.text("#detail-body")
    assert "Authorization: [redacted]" in detail
    assert page.mock.provider(SPACEAI).api_key not in detail
    assert "chat.completion" in detail  # the response body
    page.shoot("#detail", "3-request-detail")
    page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)  # the dialog closes by keyboard
    page.wait(lambda: not page.find("#detail").is_displayed(), "the dialog to close")


def test_advancing_the_clock_completes_a_job_on_screen(page: Page) -> None:
    created = page.mock.post(ARTIFICIAL, "/api/run", json=KITE)
    job_id = created.json()["id"]
    page.wait(lambda: row_with(page, "#job-table", job_id), "the job")
    row = row_with(page, "#job-table", job_id)
    assert row is not None
    assert row.get_attribute("data-state") in ("queued", "running")
    before = page.mock.now()
    page.click("#clock [data-advance='3600']")
    page.wait(
        lambda: page.find(f"#job-table tr[data-id='{job_id}']").get_attribute("data-state") == "succeeded",
        "done",
    )
    assert page.mock.now() >= before + 3600
    page.wait(lambda: page.text("#clock-offset") == "3600.0", "the clock's offset")
    # The custom advance, from the keyboard.
    seconds = page.find("#advance-form input[name='seconds']")
    seconds.clear()
    seconds.send_keys("90", Keys.ENTER)
    page.wait(lambda: page.text("#clock-offset") == "3690.0", "a custom advance")
    page.shoot("#resources", "4-resources")
    page.shoot("#clock", "5-clock")
    page.click("#reset")
    page.wait(lambda: page.text("#clock-offset") == "0.0", "the reset")
    assert page.mock.control("GET", "/resources")["jobs"] == []
    page.wait(lambda: row_with(page, "#job-table", job_id) is None, "the job to go")


def test_wallets_and_keys(page: Page) -> None:
    account = next(a for a in page.mock.accounts(PAHLAVAN) if a["wallet_cents"])
    page.type_into(f"#account-table tr[data-account='{account['id']}'] input", "4321", Keys.ENTER)
    shown = f"#account-table tr[data-account='{account['id']}'] .balance"
    page.wait(lambda: "4321" in page.text(shown), "the balance")
    assert page.mock.wallet(PAHLAVAN, account["id"]) == 4321
    key = page.mock.keys(PAHLAVAN)[0]
    page.type_into(f"#key-table tr[data-key='{key['key_id']}'] input", "250", Keys.ENTER)
    page.wait(lambda: page.mock.keys(PAHLAVAN)[0]["spend_limit_cents"] == 250, "the spend limit")
    # Create a key: its secret is shown once, and it works at once.
    Select(page.find("#key-form select")).select_by_value(SPACEAI)
    name = page.find("#key-form input[name='name']")
    name.clear()
    name.send_keys("from the dashboard", Keys.ENTER)
    page.wait(lambda: page.find("#new-key").is_displayed(), "the new key")
    secret = page.text("#new-key code")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert page.mock.get(SPACEAI, "/v1/models", headers=bearer).status_code == 200
    created = next(k for k in page.mock.keys(SPACEAI) if k["name"] == "from the dashboard")
    page.wait(lambda: page.all(f"#key-table tr[data-key='{created['key_id']}']"), "the key's row")
    page.click(f"#key-table tr[data-key='{created['key_id']}'] button.danger")
    row = f"#key-table tr[data-key='{created['key_id']}']"
    page.wait(lambda: "revoked" in page.text(row), "the key revoked")
    assert page.mock.get(SPACEAI, "/v1/models", headers=bearer).status_code == 401
    page.shoot("#accounts", "6-wallets-and-keys")


def test_an_injected_fault_fails_the_next_call_and_shows(page: Page) -> None:
    form = page.find("#fault-form")
    Select(form.find_element(By.NAME, "provider")).select_by_value(SPACEAI)
    form.find_element(By.NAME, "operation_id").send_keys("listModels")
    status = form.find_element(By.NAME, "status")
    status.clear()
    # Enter submits (a click could land on the operation field's suggestion list instead).
    status.send_keys("503", Keys.ENTER)
    page.wait(lambda: row_with(page, "#fault-table", "listModels"), "the fault in the list")
    (fault,) = page.mock.faults()
    assert (fault["provider"], fault["operation_id"], fault["status"], fault["remaining"]) == (
        SPACEAI,
        "listModels",
        503,
        1,
    )
    page.shoot("#faults", "7-faults")
    assert page.mock.get(SPACEAI, "/v1/models").status_code == 503
    page.wait(lambda: page.all("#request-table tr.status-5xx"), "the failed call in the journal")
    assert "503" in page.find("#request-table tr.status-5xx").text
    page.wait(lambda: row_with(page, "#fault-table", "listModels") is None, "the spent fault to go")
    assert page.mock.get(SPACEAI, "/v1/models").status_code == 200
    # Latency and a stream cut, then clear them all.
    form.find_element(By.NAME, "latency_ms").send_keys("5")
    form.find_element(By.NAME, "cut_after_events").send_keys("2")
    page.click("#fault-form button[type='submit']")
    page.wait(lambda: len(page.mock.faults()) == 1, "the second fault")
    assert page.mock.faults()[0]["cut_after_events"] == 2
    page.click("#clear-faults")
    page.wait(lambda: page.mock.faults() == [], "the faults to clear")
    page.wait(lambda: "No faults" in page.text("#fault-table"), "the empty list")


def test_resend_redelivers_a_webhook(page: Page) -> None:
    with WebhookReceiver() as receiver:
        body = {**KITE, "webhook": receiver.url}
        assert page.mock.post(ARTIFICIAL, "/api/run", json=body).status_code == 200
        page.click("#clock [data-advance='3600']")
        receiver.wait(1, timeout=WAIT_SECONDS)
        (delivery,) = page.mock.webhooks()
        row = f"#webhook-table tr[data-id='{delivery['id']}']"
        page.wait(lambda: "succeeded" in page.text(row), "the delivery")
        page.click(f"#webhook-table tr[data-id='{delivery['id']}'] button.resend")
        received = receiver.wait(2, timeout=WAIT_SECONDS)
        assert received[1].id == received[0].id  # the same webhook-id, delivered again
        page.wait(
            lambda: page.text(f"#webhook-table tr[data-id='{delivery['id']}'] .attempt-count") == "2",
            "the second attempt on screen",
        )
        page.shoot("#webhooks", "8-webhooks")


def test_readable_on_a_phone(page: Page) -> None:
    page.driver.set_window_size(390, 844)
    page.wait(lambda: page.driver.execute_script("return window.innerWidth") <= 400, "the narrow window")
    overflow = page.driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # nothing wider than the screen: tables scroll inside their panels
    page.shoot("#providers", "9-phone-providers")
    page.shoot("#clock", "9-phone-clock")
    # Keyboard: the first Tab reaches the skip link, which leads to the content.
    page.find("body").send_keys(Keys.TAB)
    assert page.driver.switch_to.active_element.text == "Skip to content"


def test_a_spec_violation_is_marked_on_its_entry(page: Page) -> None:
    service = page.mock.server.mock.providers[SPACEAI]
    original = service.handlers["listModels"]

    async def broken(call: Any) -> JsonReply:
        return JsonReply({"object": "list"})  # no "data": outside the spec

    service.handlers["listModels"] = broken
    try:
        assert page.mock.get(SPACEAI, "/v1/models").status_code == 500  # strict validation
    finally:
        service.handlers["listModels"] = original
    page.wait(lambda: page.all("#request-table tr.violation"), "the flagged entry")
    assert "spec violation" in page.text("#request-table tr.violation")
    Select(page.find("#filter-status")).select_by_value("violation")
    page.wait(lambda: len(page.all("#request-table tbody tr[data-id]")) == 1, "the violation filter")
    page.click("#request-table tr.violation button")
    page.wait(lambda: "Spec violation" in page.text("#detail-body"), "the violation in the detail")
    assert "data" in page.text("#detail-body .violation-box")
    assert "null" not in page.text("#detail-body").split("\n")[:3]
    page.shoot("#detail", "3-request-detail-violation")
    page.mock.reset()  # the violation was on purpose: the fixture's check must not see it


RECORD_CONTROL = """
// Records what the page sends to the control API (the calls themselves go through unchanged).
window.sentToControl = [];
const realFetch = window.fetch.bind(window);
window.fetch = (input, init = {}) => {
  const url = String(input);
  if (url.includes("/_mock/")) {
    const headers = new Headers(init.headers || {});
    window.sentToControl.push({ url, method: init.method || "GET", auth: headers.get("Authorization"),
                                type: headers.get("Content-Type") });
  }
  return realFetch(input, init);
};
"""
TOKEN = "s3cret-dashboard-token"


@pytest.fixture(scope="module")
def protected_server(server_pool: Callable[..., ServerThread]) -> ServerThread:
    """A mock whose control API requires a token, as one reachable off loopback does."""
    return server_pool(seed=16, control_token=TOKEN)


def test_the_page_asks_once_for_a_control_token(
    browser: Any, protected_server: Any, attach_mock: Any, screenshots: Path
) -> None:
    mock = attach_mock(protected_server)
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CONTROL})
    try:
        browser.get(f"{mock.base_url}/_mock/ui")
        page = Page(browser, mock, screenshots)
        page.wait(lambda: page.find("#token-dialog").is_displayed(), "the token dialog")
        page.shoot("#token-dialog", "0-token")
        page.find("#token-input").send_keys(TOKEN, Keys.ENTER)
        page.wait(lambda: page.text("#live-status") == "live", "the live feed with the token")
        page.wait(lambda: len(page.all("#provider-list .card")) == len(mock.providers), "the providers")
        assert browser.execute_script("return sessionStorage.getItem('mockserver.controlToken')") == TOKEN
        assert browser.execute_script("return localStorage.length") == 0  # the tab's session only
        page.click("#clock [data-advance='60']")
        page.wait(lambda: page.text("#clock-offset") == "60.0", "the advance with the token")
        sent = browser.execute_script("return window.sentToControl")
        changes = [s for s in sent if s["method"] != "GET"]
        assert changes
        assert all(s["auth"] == f"Bearer {TOKEN}" and s["type"] == "application/json" for s in changes)
        # Asked once: every call after the answer carries the token.
        first = next(i for i, s in enumerate(sent) if s["auth"])
        assert all(s["auth"] == f"Bearer {TOKEN}" for s in sent[first:])
        browser.refresh()  # the same tab keeps it: no second question
        page.wait(lambda: page.text("#live-status") == "live", "the live feed after a reload")
        assert not page.find("#token-dialog").is_displayed()
    finally:
        browser.execute_script("sessionStorage.clear()")
        browser.get("about:blank")
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )
