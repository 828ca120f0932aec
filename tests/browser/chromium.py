"""Headless Debian Chromium driven by Selenium through /usr/bin/chromedriver (no browser downloads)."""

import shutil
import tempfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 800)
# What Chromium needs to run headless as root in a container, and to stay off the network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


class Browser:
    """One Chromium with a fresh profile; ``quit`` removes the profile."""

    def __init__(self):
        """Start Chromium headless."""
        self.profile = tempfile.mkdtemp(prefix="gw-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        # The window includes no browser chrome headless, but pin the viewport so screenshots are exact.
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        self.driver.set_page_load_timeout(30)

    def open(self, url):
        """Navigate and wait for the document."""
        self.driver.get(url)

    def find(self, css, timeout=10):
        """The first element matching ``css``, waiting for it to appear."""
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def all(self, css):
        """Every element matching ``css`` now."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css="body"):
        """Visible text of the first match."""
        return self.find(css).text

    def fill(self, css, value):
        """Replace an input's value."""
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def click(self, css):
        """Click and wait for the next page to replace this one."""
        old = self.find("html")
        self.find(css).click()
        WebDriverWait(self.driver, 15).until(lambda driver: _replaced(old))

    def sign_in(self, base_url, key):
        """Sign in through the form."""
        self.open(f"{base_url}/dashboard/login")
        self.fill("#api_key", key)
        self.click("#sign-in")

    def quit(self):
        """Close Chromium and delete its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def _replaced(element):
    """Whether the page holding ``element`` is gone (a new one replaced it)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException:  # asked while the old document was being torn down: ask again
        return False
    return False
