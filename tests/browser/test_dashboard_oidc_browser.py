"""OpenID Connect sign-in in a real browser, the provider on another site than the gateway (localhost
against 127.0.0.1). When the way back starts on the provider's page it is a cross-site navigation:
the pending sign-in must survive it (its SameSite=Lax cookie) and the SameSite=Strict session must
be in place after it (Chromium sends it only once the "Signed in" page moves on)."""

import pytest
import requests

from tests.helpers import ADMIN
from tests.helpers.oidc_provider import oidc_provider

CLIENT_ID, CLIENT_SECRET = "ops-gateway-dashboard", "provider-client-secret"
ADMIN_EMAIL = "ops@example.com"


@pytest.fixture
def provider():
    """The local provider at http://localhost:<port>, approving every sign-in as ADMIN_EMAIL."""
    with oidc_provider(CLIENT_ID, CLIENT_SECRET, ADMIN_EMAIL, host="localhost") as running:
        yield running


@pytest.fixture
def oidc_gateway(make_gateway, provider):
    """gunicorn whose dashboard signs in through ``provider`` (ADMIN_EMAIL allowed), registered there
    with the callback URI the gateway builds from the Host the browser uses."""
    server = make_gateway(
        OIDC_ISSUER=provider.issuer,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_ALLOWED_EMAILS=ADMIN_EMAIL,
    )
    provider.redirect_uris = [f"{server.url}/dashboard/login/oidc/callback"]
    return server


def create_admin(gateway, email):
    """An admin user made through the running gateway's admin API."""
    response = requests.post(
        f"{gateway.url}/admin/users", json={"email": email, "role": "admin"}, headers=ADMIN, timeout=10
    )
    response.raise_for_status()
    return response.json()["user"]


def auth_failures(sql):
    return sql("SELECT details FROM api_key_audit_logs WHERE action = 'auth_failure' ORDER BY id")


@pytest.mark.parametrize("consent", [False, True], ids=["provider-approves-at-once", "provider-asks-first"])
def test_an_allowed_admin_signs_in_through_the_provider_and_lands_on_the_overview(
    browser, oidc_gateway, provider, sql, consent
):
    """At once: the provider redirects straight back (a session there already), so the whole
    navigation started on the gateway's page. Asks first: the way back starts on the provider's page,
    a cross-site navigation that carries the Lax pending sign-in but never the Strict session."""
    admin = create_admin(oidc_gateway, ADMIN_EMAIL)
    provider.consent = consent
    browser.open(f"{oidc_gateway.url}/dashboard/login")
    browser.click("#sign-in-oidc")
    if consent:
        assert browser.driver.current_url.startswith(f"{provider.issuer}/authorize?")
        browser.click("#approve")
    # The "Signed in" page moves on by itself; the overview is the first page with the layout's h1
    # (else the sign-in page: its error for a refusal, the bare form for a session that got lost).
    assert browser.text("h1, #login-error, #api_key") == "Overview", browser.driver.current_url
    assert browser.driver.current_url == f"{oidc_gateway.url}/dashboard/"
    assert f"Signed in as {ADMIN_EMAIL}" in browser.text(".topbar")
    assert browser.text("#component-database").endswith("connected")
    assert len(browser.all("svg.chart")) == 4
    browser.open(f"{oidc_gateway.url}/dashboard/users/{admin['id']}")
    assert browser.text("h1") == ADMIN_EMAIL  # a signed-in-only page, not the sign-in form
    assert "gw_dashboard_oidc" not in [cookie["name"] for cookie in browser.driver.get_cookies()]  # spent
    assert provider.token_requests == 1 and auth_failures(sql) == []


def test_an_email_not_allowed_ends_on_the_sign_in_page_with_the_reason(browser, oidc_gateway, provider, sql):
    create_admin(oidc_gateway, "stranger@example.com")
    provider.email = "stranger@example.com"
    browser.open(f"{oidc_gateway.url}/dashboard/login")
    browser.click("#sign-in-oidc")
    assert "may not sign in" in browser.text("#login-error")
    assert browser.driver.current_url.startswith(f"{oidc_gateway.url}/dashboard/login/oidc/callback")
    (row,) = auth_failures(sql)
    assert row["details"]["reason"] == "oidc_email_not_allowed"
    browser.open(f"{oidc_gateway.url}/dashboard/")
    assert "/dashboard/login" in browser.driver.current_url
