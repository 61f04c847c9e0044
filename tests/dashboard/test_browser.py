"""The dashboard in a real browser: ``tollhouse dashboard`` serving a seeded site, headless
Chromium signing in and opening every page through the sidebar navigation.

`AppTest` (the other dashboard tests) runs the scripts without a browser; this checks what
it cannot: that Streamlit's server starts from the command, the front end renders every
page without an error box, and the navigation hides what a role may not open. A
screenshot of each page lands in ``$TOLLHOUSE_SCREENSHOTS/<backend>/`` (default
``.tollhouse/screenshots/<backend>/``).

Needs ``chromium`` and ``chromedriver`` (Debian: chromium, chromium-driver); skipped
without them unless ``TOLLHOUSE_TEST_REQUIRE_BROWSER`` is set, when it fails instead.
Nothing leaves the machine: Streamlit serves its front end itself, and Chromium's
background services are switched off.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.engine import make_url

from dashboard.access import PAGES
from tests.dashboard.site import Site

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_BROWSER = "TOLLHOUSE_TEST_REQUIRE_BROWSER"
SCREENSHOTS = "TOLLHOUSE_SCREENSHOTS"
START_TIMEOUT = 60  # seconds for the dashboard to answer its health check
WAIT = 30  # seconds for a page to render

# What each page must show once it has run (its title is checked as well).
EXPECTED = {
    "Overview": ("Requests today",),
    "Audit log": ("Matching records",),
    "Spend": ("Budgets",),
    "Drift and alerts": ("Alerts", "Model fingerprints"),
    "Policies": ("Versions",),
    "Upstreams": ("Health",),
}
# Streamlit 1.67's test ids: an uncaught exception, and ``st.error``.
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
NAV_LINK = '[data-testid="stSidebarNav"] a[data-testid="stSidebarNavLink"]'
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stStatusWidget"]'
# Placeholders shown while a widget's or chart's code loads, after the script has run.
LOADING = ", ".join(
    f'[data-testid="{test_id}"]' for test_id in ("stSkeleton", "stSkeletonElement", "stAppSkeleton")
)

# Chromium's own traffic (updates, sync, safe browsing, field trials) switched off.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate",
    "--metrics-recording-only",
    "--no-default-browser-check",
    "--no-first-run",
    "--no-proxy-server",
    "--password-store=basic",
)


def _browser_binaries() -> tuple[str, str]:
    chromium = next(
        (
            found
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (found := shutil.which(name))
        ),
        None,
    )
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = ", ".join(
            name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
        )
        reason = f"no {missing} on PATH (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get(REQUIRE_BROWSER):
            pytest.fail(f"{REQUIRE_BROWSER} is set but {reason}")
        pytest.skip(reason)
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium; each test opens the dashboard afresh (a new Streamlit session)."""
    chromium, driver_path = _browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    # Loopback only: no proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.status == 200 and answer.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def dashboard_url(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tollhouse dashboard`` for the site, on a free port; stopped after the module."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tollhouse",
                "dashboard",
                "--config",
                str(site.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(
                    f"tollhouse dashboard exited with {process.returncode}:\n"
                    f"{log.read_text(errors='replace')}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"tollhouse dashboard not healthy after {START_TIMEOUT} s:\n"
                    f"{log.read_text(errors='replace')}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Shown with -s or on failure: Streamlit's warnings and deprecations.
        print(f"--- dashboard output ({url}) ---\n{log.read_text(errors='replace')}")


def _screenshots(site: Site) -> Path:
    base = os.environ.get(SCREENSHOTS) or ROOT / ".tollhouse" / "screenshots"
    directory = Path(base) / make_url(site.url).get_backend_name()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    # Streamlit replaces elements as it renders: a stale one means "look again".
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )


def _wait_idle(driver: webdriver.Chrome) -> None:
    """Until the page is still: the script run is over (the app says so and no
    "Running..." shows) and no placeholder waits for its component's code."""
    _wait(driver).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, IDLE)
            and not d.find_elements(By.CSS_SELECTOR, RUNNING)
            and not d.find_elements(By.CSS_SELECTOR, LOADING)
        )
    )


def _sign_in(driver: webdriver.Chrome, url: str, key: str) -> None:
    driver.get(url)
    field = _wait(driver).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[type="password"]'))
    )
    field.send_keys(key)
    driver.find_element(By.XPATH, '//button[normalize-space()="Sign in"]').click()
    _wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, NAV_LINK)))
    _wait_idle(driver)


def _nav_links(driver: webdriver.Chrome) -> dict[str, WebElement]:
    """The sidebar links by page title (the link's text is the icon's name, then the title)."""
    links = {}
    for link in driver.find_elements(By.CSS_SELECTOR, NAV_LINK):
        lines = link.text.splitlines()
        if lines:
            links[lines[-1].strip()] = link
    return links


def _click(element: WebElement) -> bool:
    element.click()
    return True


def _page_text(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text


def _title_is(title: str) -> Callable[[webdriver.Chrome], bool]:
    def shown(driver: webdriver.Chrome) -> bool:
        return any(
            h1.text.strip() == title
            for h1 in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1')
        )

    return shown


def test_every_page_renders_for_an_admin(
    browser: webdriver.Chrome, dashboard_url: str, site: Site
) -> None:
    assert {page.title for page in PAGES} == set(EXPECTED)
    screenshots = _screenshots(site)
    _sign_in(browser, dashboard_url, site.keys["admin"])
    assert set(_nav_links(browser)) == set(EXPECTED)
    problems = []
    for number, page in enumerate(PAGES, start=1):
        _wait(browser).until(lambda d, title=page.title: _click(_nav_links(d)[title]))
        try:
            _wait(browser).until(_title_is(page.title))
        except TimeoutException:
            browser.save_screenshot(str(screenshots / f"{number:02d}-{page.url_path}.png"))
            pytest.fail(
                f"{page.title}: no title after {WAIT} s; page shows:\n{_page_text(browser)}"
            )
        _wait_idle(browser)
        browser.save_screenshot(str(screenshots / f"{number:02d}-{page.url_path}.png"))
        if page != PAGES[0]:  # the first page is the default: its address is the root
            assert browser.current_url.endswith(f"/{page.url_path}")
        text = _page_text(browser)
        missing = [wanted for wanted in EXPECTED[page.title] if wanted not in text]
        errors = [box.text for box in browser.find_elements(By.CSS_SELECTOR, ERRORS)]
        if missing or errors:
            problems.append(f"{page.title}: missing {missing}, error boxes {errors}")
    assert not problems, "\n".join(problems)


def test_sre_has_no_audit_log_link(
    browser: webdriver.Chrome, dashboard_url: str, site: Site
) -> None:
    _sign_in(browser, dashboard_url, site.keys["sre"])
    titles = set(_nav_links(browser))
    assert "Drift and alerts" in titles
    assert "Audit log" not in titles
    assert not browser.find_elements(By.CSS_SELECTOR, ERRORS)


def test_a_wrong_key_shows_an_error_box(
    browser: webdriver.Chrome, dashboard_url: str, site: Site
) -> None:
    """What the page tests look for does mark ``st.error``."""
    browser.get(dashboard_url)
    field = _wait(browser).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[type="password"]'))
    )
    field.send_keys("th_not-a-key")
    browser.find_element(By.XPATH, '//button[normalize-space()="Sign in"]').click()
    boxes = _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ERRORS))
    assert "unknown, revoked or expired" in boxes[0].text
    assert not browser.find_elements(By.CSS_SELECTOR, NAV_LINK)
