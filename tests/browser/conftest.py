"""Browser fixtures: gunicorn and the fake OpenRouter as real processes, and one headless Chromium."""

import pytest
import requests

from tests.browser.chromium import Browser
from tests.e2e.servers import start_fake_openrouter, start_gateway


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole session (each test signs in itself)."""
    chromium = Browser()
    yield chromium
    chromium.quit()


@pytest.fixture(autouse=True)
def fresh_cookies(browser):
    """No test inherits another's session (cookies ignore ports, and every gateway is on 127.0.0.1)."""
    browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


@pytest.fixture(scope="session")
def fake_openrouter(tmp_path_factory):
    """The project's fake OpenRouter."""
    server = start_fake_openrouter(tmp_path_factory.mktemp("browser-openrouter"))
    yield server
    server.stop()


@pytest.fixture
def make_gateway(tmp_path, test_settings, fake_openrouter):
    """Start gunicorn serving this test's database with extra environment variables (e.g. OIDC_*);
    one worker is plenty for one browser. Every gateway started is stopped after the test."""
    servers = []

    def start(**extra_env):
        requests.post(f"{fake_openrouter.url}/_control/reset", timeout=5).raise_for_status()
        settings = {**test_settings, "OPENROUTER_BASE_URL": fake_openrouter.base_url}
        servers.append(start_gateway(tmp_path, settings, workers=1, threads=4, extra_env=extra_env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gateway(make_gateway):
    """gunicorn serving this test's database."""
    return make_gateway()
