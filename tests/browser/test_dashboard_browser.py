"""The dashboard in a real browser: sign in, read the overview, refresh models, grant credits, see the audit."""

import requests

from devtools.fake_openrouter import MODELS
from tests.conftest import ADMIN_API_KEY
from tests.helpers import ADMIN, bearer


def create_user(gateway, **fields):
    """A user made through the running gateway's admin API; (user, key)."""
    response = requests.post(f"{gateway.url}/admin/users", json=fields, headers=ADMIN, timeout=10)
    response.raise_for_status()
    return response.json()["user"], response.json()["api_key"]


def complete(gateway, key, content="hello"):
    """One real chat completion through the gateway (and the fake OpenRouter)."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    response = requests.post(f"{gateway.url}/v1/chat/completions", json=body, headers=bearer(key), timeout=30)
    response.raise_for_status()


def test_sign_in_and_read_the_overview(browser, gateway):
    _, key = create_user(gateway, email="traffic@example.com", credits="5.00")
    for index in range(3):
        complete(gateway, key, f"question {index}")
    browser.open(f"{gateway.url}/dashboard/")
    assert "/dashboard/login" in browser.driver.current_url
    browser.fill("#api_key", ADMIN_API_KEY)
    browser.click("#sign-in")
    assert browser.text("h1") == "Overview"
    assert browser.text("#component-database").endswith("connected")
    assert "operational" in browser.text("#component-redis").lower()
    assert browser.text("#kpi-requests") == "3"
    assert len(browser.all("svg.chart")) == 4
    assert len(browser.all("svg.chart path.area")) >= 3  # requests, tokens and cost have data
    assert "No alerts are firing" in browser.text("#alerts")


def test_wrong_key_is_refused_and_sign_out_returns_to_the_form(browser, gateway):
    browser.sign_in(gateway.url, "gw_live_" + "n" * 43)
    assert "not accepted" in browser.text("#login-error")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    assert "Signed in as" in browser.text(".topbar")
    browser.click(".topbar button")
    assert "Signed out" in browser.text(".flash")
    browser.open(f"{gateway.url}/dashboard/users")
    assert "/dashboard/login" in browser.driver.current_url


def test_refresh_the_model_cache_from_the_page(browser, gateway):
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/models")
    before = browser.text("#cache-refreshes")
    browser.click("#refresh-models")
    assert f"Refreshed {len(MODELS)} models" in browser.text(".flash.success")
    assert browser.text("#cache-total") == str(len(MODELS))
    assert browser.text("#cache-refreshes") != before
    assert "openai/gpt-4o-mini" in browser.text("table")


def test_grant_credits_and_see_the_audit_entry(browser, gateway):
    user, _ = create_user(gateway, email="grantee@example.com")
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users")
    browser.fill("#q", "grantee")
    browser.click("#search-users")
    browser.click("#users a")
    assert browser.text("h1") == "grantee@example.com"
    browser.fill("#amount", "42.50")
    browser.fill("#reason", "browser test grant")
    browser.click("#grant-credits")
    browser.click("#confirm-action")
    assert "Granted $42.50" in browser.text(".flash.success")
    assert browser.text("#user-credits") == "$42.50"
    assert "credits_adjusted" in browser.text("#user-audit")
    browser.open(f"{gateway.url}/dashboard/audit?action=credits_adjusted")
    row = browser.text("#log-rows tbody tr")
    assert "credits_adjusted" in row and "admin:bootstrap" in row and "browser test grant" in row
    balance = requests.get(f"{gateway.url}/admin/users/{user['id']}", headers=ADMIN, timeout=10).json()["credits"]
    assert balance == "42.50"


def test_run_a_job_now_from_the_jobs_page(browser, gateway):
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/jobs")
    browser.click("#run-release_stale_holds")
    assert "release_stale_holds succeeded" in browser.text(".flash.success")
    assert "dashboard" in browser.text("#job-runs")


def test_public_status_page_and_badge(browser, gateway):
    browser.open(f"{gateway.url}/status")
    assert browser.find("#status-overall").get_attribute("data-state") in ("operational", "degraded")
    assert "Database" in browser.text("#status-database")
    browser.open(f"{gateway.url}/status/badge.svg")
    assert "status" in browser.driver.page_source


def test_a_users_budgets_show_spend_against_the_cap(browser, gateway):
    user, key = create_user(gateway, email="capped@example.com", credits="5.00")
    capped = {"budget": "0.01", "budget_period": "daily"}
    requests.patch(f"{gateway.url}/admin/users/{user['id']}", json=capped, headers=ADMIN, timeout=10).raise_for_status()
    complete(gateway, key)
    browser.sign_in(gateway.url, ADMIN_API_KEY)
    browser.open(f"{gateway.url}/dashboard/users/{user['id']}")
    row = browser.text(f"#budget-user-{user['id']}")
    assert "this user" in row and "$0.01" in row and "daily" in row
    spent = requests.get(f"{gateway.url}/user/balance", headers=bearer(key), timeout=10).json()["budgets"][0]["spent"]
    assert float(spent) > 0 and f"${spent}" in row
