"""Dashboard sign-in with OpenID Connect, end to end against a local provider (tests/helpers/oidc_provider.py):
who may sign in, the session it opens, and every refusal audited."""

import pytest

from tests.helpers import create_user
from tests.helpers.dashboard import csrf_of, post_confirmed
from tests.helpers.oidc_provider import oidc_provider, sign_in_with_oidc

CLIENT_ID, CLIENT_SECRET = "ops-gateway-dashboard", "provider-client-secret"
ADMIN_EMAIL = "ops@example.com"


@pytest.fixture
def provider():
    """The local provider, approving every sign-in as ADMIN_EMAIL unless a test says otherwise."""
    with oidc_provider(CLIENT_ID, CLIENT_SECRET, ADMIN_EMAIL) as running:
        yield running


@pytest.fixture
def oidc_app(make_app, provider):
    """Build a gateway whose dashboard signs in through ``provider``, ADMIN_EMAIL allowed."""

    def build(**extra):
        settings = {
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_ALLOWED_EMAILS": (ADMIN_EMAIL,),
        }
        return make_app(**{**settings, **extra})

    return build


def auth_failures(sql):
    return sql("SELECT actor, user_id, details FROM api_key_audit_logs WHERE action = 'auth_failure' ORDER BY id")


def assert_refused(response, status, says, sql, reason, client):
    """The sign-in page with the reason, one audited failure, and no session."""
    page = response.get_data(as_text=True)
    assert response.status_code == status and 'id="login-error"' in page and says in page
    (row,) = auth_failures(sql)
    assert row["details"]["reason"] == reason and row["details"]["path"] == "/dashboard/login/oidc/callback"
    assert row["actor"].startswith("ip:")
    assert client.get("/dashboard/").status_code == 302
    return row


def test_an_allowed_admin_signs_in_and_acts_as_that_admin(oidc_app, sql):
    app = oidc_app()
    client = app.test_client()
    admin, _ = create_user(client, email=ADMIN_EMAIL, role="admin")
    target, _ = create_user(client)
    login = client.get("/dashboard/login").get_data(as_text=True)
    assert 'id="sign-in-oidc"' in login and 'id="api_key"' in login  # both ways to sign in

    response = sign_in_with_oidc(client)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and f"Signed in as {ADMIN_EMAIL}" in page
    assert 'http-equiv="refresh" content="0; url=/dashboard/"' in page
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("gw_dashboard=") and "SameSite=Strict" in c for c in cookies)
    assert any(c.startswith("gw_dashboard_oidc=;") for c in cookies)  # the pending sign-in is spent
    assert client.get("/dashboard/").status_code == 200

    token = csrf_of(client, f"/dashboard/users/{target['id']}")
    granted = post_confirmed(
        client, f"/dashboard/users/{target['id']}/credits", {"amount": "5", "reason": "oidc"}, token
    )
    assert granted.status_code == 302
    (row,) = sql("SELECT actor FROM api_key_audit_logs WHERE action = 'credits_adjusted'")
    assert row["actor"] == f"admin:{admin['id']}"
    assert auth_failures(sql) == []


def test_email_from_userinfo_when_the_id_token_has_none(oidc_app, provider):
    client = oidc_app().test_client()
    create_user(client, email=ADMIN_EMAIL, role="admin")
    provider.email_in_id_token = False
    assert sign_in_with_oidc(client).status_code == 200
    assert client.get("/dashboard/").status_code == 200


def test_an_email_not_allowed_is_refused_and_audited(oidc_app, provider, sql):
    client = oidc_app().test_client()
    create_user(client, email="stranger@example.com", role="admin")
    provider.email = "stranger@example.com"
    response = sign_in_with_oidc(client)
    row = assert_refused(response, 403, "may not sign in", sql, "oidc_email_not_allowed", client)
    assert row["details"]["email"] == "stranger@example.com"


def test_an_allowed_domain_lets_its_admins_in(oidc_app, provider):
    client = oidc_app(OIDC_ALLOWED_EMAILS=(), OIDC_ALLOWED_DOMAINS=("corp.example",)).test_client()
    create_user(client, email="Dana@Corp.Example", role="admin")
    provider.email = "dana@corp.example"
    assert sign_in_with_oidc(client).status_code == 200
    assert client.get("/dashboard/").status_code == 200


def test_an_allowed_email_that_is_no_admin_is_refused(oidc_app, sql):
    client = oidc_app().test_client()
    user, _ = create_user(client, email=ADMIN_EMAIL)  # role user
    row = assert_refused(sign_in_with_oidc(client), 403, "not an active admin", sql, "oidc_not_admin", client)
    assert row["user_id"] == user["id"]


def test_an_allowed_email_with_no_user_is_refused_when_admins_are_not_created(oidc_app, sql):
    client = oidc_app().test_client()
    assert_refused(sign_in_with_oidc(client), 403, "not an active admin", sql, "oidc_not_admin", client)
    assert sql("SELECT id FROM users WHERE email = %s", (ADMIN_EMAIL,)) == []


def test_create_admins_makes_the_admin_on_first_sign_in_only(oidc_app, sql):
    app = oidc_app(OIDC_CREATE_ADMINS=True)
    for _ in range(2):
        client = app.test_client()
        assert sign_in_with_oidc(client).status_code == 200
        assert client.get("/dashboard/").status_code == 200
    (user,) = sql("SELECT id, role, status FROM users WHERE email = %s", (ADMIN_EMAIL,))
    assert user["role"] == "admin" and user["status"] == "active"
    (created,) = sql("SELECT actor FROM api_key_audit_logs WHERE action = 'user_created'")
    assert created["actor"] == "system:oidc"


def test_a_wrong_state_is_refused_before_the_code_is_used(oidc_app, provider, sql):
    client = oidc_app().test_client()
    create_user(client, email=ADMIN_EMAIL, role="admin")
    response = sign_in_with_oidc(client, state="forged-state")
    assert_refused(response, 401, "not started in this browser", sql, "oidc_state_mismatch", client)
    assert provider.token_requests == 0


def test_an_unverified_email_is_refused(oidc_app, provider, sql):
    client = oidc_app().test_client()
    create_user(client, email=ADMIN_EMAIL, role="admin")
    provider.email_verified = False
    assert_refused(sign_in_with_oidc(client), 403, "not verified", sql, "oidc_email_unverified", client)


def test_the_session_ends_when_the_admin_is_demoted(oidc_app, sql):
    client = oidc_app().test_client()
    admin, _ = create_user(client, email=ADMIN_EMAIL, role="admin")
    sign_in_with_oidc(client)
    assert client.get("/dashboard/").status_code == 200
    sql("UPDATE users SET role = 'user' WHERE id = %s", (admin["id"],))
    assert client.get("/dashboard/").status_code == 302


def test_without_oidc_settings_there_is_no_oidc_sign_in(client):
    assert 'id="sign-in-oidc"' not in client.get("/dashboard/login").get_data(as_text=True)
    assert client.get("/dashboard/login/oidc").status_code == 404
    assert client.get("/dashboard/login/oidc/callback?code=x&state=y").status_code == 404


def test_a_provider_that_refuses_the_code_is_refused(oidc_app, sql):
    client = oidc_app(OIDC_CLIENT_SECRET="not-the-registered-secret").test_client()
    create_user(client, email=ADMIN_EMAIL, role="admin")
    assert_refused(sign_in_with_oidc(client), 401, "did not sign you in", sql, "oidc_provider_error", client)
