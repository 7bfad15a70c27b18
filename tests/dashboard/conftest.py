"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium, on a dashboard page.

Without a browser these tests skip with the reason, so the README's test command works anywhere; with
``CI`` set they fail instead (CI installs both packages: a missing browser there is a broken CI, not a
pass). The browser reaches nothing but loopback: background networking, updates and sync are off, and
every host name but the mock's resolves to nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mockserver.testing.server import ServerThread

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,1000",
)
PAGE_LOAD_SECONDS = 20.0


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium with its console log readable (``get_log("browser")``)."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the dashboard's browser tests: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


SCREENSHOTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """A temporary folder for the panels' screenshots; its path is printed in the run's summary."""
    folder = Path(tempfile.mkdtemp(prefix="mock-dashboard-screens-"))
    request.config.stash[SCREENSHOTS] = folder
    return folder


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the screenshots are (after the results, whatever the capture mode)."""
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None:
        count = len(list(folder.glob("*.png")))
        terminalreporter.write_line(f"dashboard screenshots ({count}): {folder}")


@pytest.fixture(scope="module")
def dashboard_server(server_pool: Callable[..., ServerThread]) -> ServerThread:
    """A server of its own (the page's actions reset and steer it), otherwise like the shared one."""
    return server_pool(seed=16)
