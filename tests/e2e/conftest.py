"""Fixtures for the browser tests: headless Chromium (chapter 1's server is tests/conftest.py's ``realtime``).

Chromium is Debian's (``apt-get install chromium chromium-driver``), driven by Selenium through
Debian's chromedriver, built from the same source and version as the browser: no browser or driver
is downloaded. Missing, the tests skip with that hint; under ``REQUIRE_SERVERS=1`` (CI) they fail.
"""
import os
import shutil
import tempfile

import pytest

from load.servers import required


CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL_HINT = "headless Chromium is missing: apt-get install chromium chromium-driver"
# Quiet, fast and sandbox-free (as root) on a closed network; timers run at full speed in every window.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--window-size=1000,900",
)


def _first(paths) -> str | None:
    return next((path for path in paths if os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(browser, driver) paths; skips with an install hint when missing (REQUIRE_SERVERS=1: fails)."""
    browser, driver = _first(CHROMIUM), _first(CHROMEDRIVER)
    try:
        import selenium  # noqa: F401
    except ImportError:
        hint = "selenium is missing: pip install -r requirements.txt"
    else:
        hint = None if browser and driver else INSTALL_HINT
    if hint is None:
        return browser, driver
    if required():
        pytest.fail(hint, pytrace=False)
    pytest.skip(hint)


@pytest.fixture
def browser(chromium, tmp_path):
    """A fresh headless Chromium (its own temp profile) for one test; quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary, driver_path = chromium
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # the page's console
    service = DriverService(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(15)
    driver.set_script_timeout(10)
    try:
        yield driver
        # an exception the page did not catch (a failed fetch it forgot, a typo) fails the test
        thrown = [entry["message"] for entry in driver.get_log("browser") if entry.get("source") == "javascript"]
        assert not thrown, f"the page threw: {thrown}"
    finally:
        driver.quit()                      # ends Chromium and chromedriver
        shutil.rmtree(profile, ignore_errors=True)

