"""Dashboard account actions over the test client: create a user (key shown once), suspend/reactivate, budget."""

from decimal import Decimal

from tests.helpers import bearer, create_user
from tests.helpers.dashboard import csrf_of, post_confirmed, sign_in


def audit_rows(sql, action, user_id):
    return sql(
        "SELECT actor, details FROM api_key_audit_logs WHERE action = %s AND user_id = %s ORDER BY id",
        (action, user_id),
    )


def signed_in(client, path="/dashboard/users"):
    """Sign in as the bootstrap admin; the CSRF token of the session."""
    sign_in(client)
    return csrf_of(client, path)


NEW_USER = {"email": "new@example.com", "username": "newbie", "plan": "trial", "role": "user", "credits": "12.50"}


def test_create_user_asks_first_then_shows_the_first_key_once_uncached(client, sql):
    token = signed_in(client, "/dashboard/users/new")
    asked = client.post("/dashboard/users/new", data={**NEW_USER, "csrf_token": token})
    assert asked.status_code == 200 and "new@example.com" in asked.get_data(as_text=True)
    assert sql("SELECT id FROM users WHERE email = 'new@example.com'") == []

    response = client.post("/dashboard/users/new", data={**NEW_USER, "csrf_token": token, "confirmed": "yes"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    full_key = page.split('id="new-api-key">')[1].split("<")[0]
    (user,) = sql("SELECT id, username, plan, role, credits FROM users WHERE email = 'new@example.com'")
    assert (user["username"], user["plan"], user["role"], user["credits"]) == (
        "newbie",
        "trial",
        "user",
        Decimal("12.5"),
    )
    assert client.get("/user/balance", headers=bearer(full_key)).status_code == 200
    assert [row["actor"] for row in audit_rows(sql, "user_created", user["id"])] == ["admin:bootstrap"]
    assert audit_rows(sql, "credits_adjusted", user["id"])[0]["actor"] == "admin:bootstrap"
    stored = sql("SELECT * FROM api_keys WHERE user_id = %s", (user["id"],))
    assert full_key not in repr(stored) and full_key not in repr(sql("SELECT * FROM api_key_audit_logs"))
    assert full_key not in client.get(f"/dashboard/users/{user['id']}").get_data(as_text=True)


def test_create_user_with_bad_input_shows_the_problems_with_a_400(client, sql):
    token = signed_in(client, "/dashboard/users/new")
    bad = {**NEW_USER, "email": "not-an-email", "credits": "-5"}
    response = client.post("/dashboard/users/new", data={**bad, "csrf_token": token, "confirmed": "yes"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="form-problems"' in page
    assert "email" in page and "credits" in page and 'value="not-an-email"' in page
    assert sql("SELECT id FROM users WHERE email = 'not-an-email'") == []


def test_create_user_refuses_a_taken_email_and_an_unknown_plan(client):
    create_user(client, email="taken@example.com")
    token = signed_in(client, "/dashboard/users/new")
    taken = client.post(
        "/dashboard/users/new", data={**NEW_USER, "email": "taken@example.com", "csrf_token": token, "confirmed": "yes"}
    )
    assert taken.status_code == 409 and "already exists" in taken.get_data(as_text=True)
    unknown = client.post(
        "/dashboard/users/new", data={**NEW_USER, "plan": "gold", "csrf_token": token, "confirmed": "yes"}
    )
    assert unknown.status_code == 422 and "no plan named" in unknown.get_data(as_text=True)


def test_create_user_without_the_csrf_token_changes_nothing(client, sql):
    signed_in(client)
    response = client.post("/dashboard/users/new", data={**NEW_USER, "csrf_token": "forged", "confirmed": "yes"})
    assert response.status_code == 400 and "csrf" in response.get_data(as_text=True)
    assert sql("SELECT id FROM users WHERE email = 'new@example.com'") == []


def test_suspend_then_reactivate_a_user_audited_as_the_admin(client, sql):
    user, key = create_user(client)
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/status"
    response = post_confirmed(client, path, {"status": "suspended"}, token)
    assert response.status_code == 302
    assert sql("SELECT status FROM users WHERE id = %s", (user["id"],))[0]["status"] == "suspended"
    assert client.get("/user/balance", headers=bearer(key)).status_code == 401  # user_suspended
    post_confirmed(client, path, {"status": "active"}, token)
    assert sql("SELECT status FROM users WHERE id = %s", (user["id"],))[0]["status"] == "active"
    rows = audit_rows(sql, "user_updated", user["id"])
    assert [(r["actor"], r["details"]["changes"]["status"]) for r in rows] == [
        ("admin:bootstrap", "suspended"),
        ("admin:bootstrap", "active"),
    ]


def test_the_confirmation_page_alone_changes_nothing(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    asked = client.post(f"/dashboard/users/{user['id']}/status", data={"status": "suspended", "csrf_token": token})
    assert asked.status_code == 200 and 'name="confirmed" value="yes"' in asked.get_data(as_text=True)
    assert sql("SELECT status FROM users WHERE id = %s", (user["id"],))[0]["status"] == "active"


def test_suspend_refuses_a_bad_status_and_a_missing_csrf_token(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/status"
    bad = client.post(path, data={"status": "deleted", "csrf_token": token, "confirmed": "yes"})
    assert bad.status_code == 400 and "status" in bad.get_data(as_text=True)
    forged = client.post(path, data={"status": "suspended", "confirmed": "yes"})
    assert forged.status_code == 400
    assert sql("SELECT status FROM users WHERE id = %s", (user["id"],))[0]["status"] == "active"
    assert (
        client.post("/dashboard/users/999999/status", data={"status": "suspended", "csrf_token": token}).status_code
        == 404
    )


def test_an_admin_users_action_is_audited_under_their_own_id(client, sql):
    admin, admin_key = create_user(client, role="admin")
    user, _ = create_user(client)
    sign_in(client, admin_key)
    token = csrf_of(client, "/dashboard/users")
    post_confirmed(client, f"/dashboard/users/{user['id']}/status", {"status": "suspended"}, token)
    assert audit_rows(sql, "user_updated", user["id"])[0]["actor"] == f"admin:{admin['id']}"


BUDGET = {
    "budget": "10",
    "budget_period": "monthly",
    "budget_alert_thresholds": "0.5, 1",
    "allowed_models": "openai/*\nanthropic/claude-3-haiku",
}


def test_set_a_users_budget_thresholds_and_models(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    response = post_confirmed(client, f"/dashboard/users/{user['id']}/budget", BUDGET, token)
    assert response.status_code == 302
    (row,) = sql(
        "SELECT budget, budget_period, budget_alert_thresholds, allowed_models FROM users WHERE id = %s", (user["id"],)
    )
    assert (row["budget"], row["budget_period"]) == (Decimal(10), "monthly")
    assert [float(t) for t in row["budget_alert_thresholds"]] == [0.5, 1.0]
    assert row["allowed_models"] == ["openai/*", "anthropic/claude-3-haiku"]
    (audit,) = audit_rows(sql, "user_updated", user["id"])
    assert audit["actor"] == "admin:bootstrap" and audit["details"]["changes"]["budget_period"] == "monthly"
    page = client.get(f"/dashboard/users/{user['id']}").get_data(as_text=True)
    assert 'value="10.00"' in page and "openai/*" in page


def test_a_bad_budget_is_a_400_page_naming_the_fields(client, sql):
    user, _ = create_user(client)
    token = signed_in(client)
    bad = {**BUDGET, "budget": "lots", "budget_alert_thresholds": "3", "allowed_models": "no spaces; allowed!"}
    response = client.post(
        f"/dashboard/users/{user['id']}/budget", data={**bad, "csrf_token": token, "confirmed": "yes"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for field in ("budget", "budget alert thresholds item 1", "allowed models item"):
        assert field in page
    assert sql("SELECT budget FROM users WHERE id = %s", (user["id"],))[0]["budget"] is None
    forged = client.post(f"/dashboard/users/{user['id']}/budget", data={**BUDGET, "confirmed": "yes"})
    assert forged.status_code == 400 and audit_rows(sql, "user_updated", user["id"]) == []
