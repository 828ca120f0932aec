"""Dashboard key actions over the test client: keys listed masked, revoke, rotate (shown once), a key's budget."""

from decimal import Decimal

from ops_gateway.accounts.key_material import mask_key
from tests.helpers import bearer, create_key, create_user
from tests.helpers.dashboard import csrf_of, post_confirmed, sign_in


def key_row(sql, key_id):
    return sql(
        "SELECT status, grace_until, budget, budget_period, allowed_models FROM api_keys WHERE id = %s", (key_id,)
    )[0]


def audit_of_key(sql, action, key_id):
    return sql("SELECT actor, details FROM api_key_audit_logs WHERE action = %s AND api_key_id = %s", (action, key_id))


def first_key_id(sql, user_id):
    return sql("SELECT id FROM api_keys WHERE user_id = %s ORDER BY id LIMIT 1", (user_id,))[0]["id"]


def signed_in(client):
    """Sign in as the bootstrap admin; the session's CSRF token."""
    sign_in(client)
    return csrf_of(client, "/dashboard/users")


def test_user_page_lists_keys_masked_never_in_full(client):
    user, key = create_user(client)
    _, second = create_key(client, key)
    signed_in(client)
    page = client.get(f"/dashboard/users/{user['id']}").get_data(as_text=True)
    assert mask_key(key) in page and mask_key(second) in page
    assert key not in page and second not in page


def test_revoke_refuses_the_last_key_unless_forced(client, sql):
    user, key = create_user(client)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/keys/{key_id}/revoke"
    refused = client.post(path, data={"csrf_token": token, "confirmed": "yes"})
    assert refused.status_code == 409 and "last active key" in refused.get_data(as_text=True)
    assert key_row(sql, key_id)["status"] == "active"
    response = post_confirmed(client, path, {"force": "true"}, token)
    assert response.status_code == 302
    assert key_row(sql, key_id)["status"] == "revoked"
    assert client.get("/user/balance", headers=bearer(key)).status_code == 401
    (audit,) = audit_of_key(sql, "delete", key_id)
    assert audit["actor"] == "admin:bootstrap" and audit["details"]["forced"] is True


def test_revoke_needs_the_csrf_token_and_an_existing_key(client, sql):
    user, key = create_user(client)
    create_key(client, key)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    forged = client.post(f"/dashboard/users/{user['id']}/keys/{key_id}/revoke", data={"confirmed": "yes"})
    assert forged.status_code == 400 and key_row(sql, key_id)["status"] == "active"
    other, _ = create_user(client)
    missing = client.post(f"/dashboard/users/{other['id']}/keys/{key_id}/revoke", data={"csrf_token": token})
    assert missing.status_code == 404
    assert audit_of_key(sql, "delete", key_id) == []


def test_rotate_shows_the_replacement_once_and_keeps_the_old_key_for_the_grace(client, sql):
    user, key = create_user(client)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    response = post_confirmed(
        client, f"/dashboard/users/{user['id']}/keys/{key_id}/rotate", {"grace_seconds": "3600"}, token
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    new_key = page.split('id="new-api-key">')[1].split("<")[0]
    assert client.get("/user/balance", headers=bearer(new_key)).status_code == 200
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200  # still within its grace
    row = key_row(sql, key_id)
    assert row["status"] == "rotated" and row["grace_until"] is not None
    (audit,) = audit_of_key(sql, "rotate", key_id)
    assert audit["actor"] == "admin:bootstrap" and audit["details"]["grace_seconds"] == 3600
    assert new_key not in client.get(f"/dashboard/users/{user['id']}").get_data(as_text=True)


def test_rotate_refuses_a_bad_grace_and_a_rotated_key(client, sql):
    user, _ = create_user(client)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/keys/{key_id}/rotate"
    bad = client.post(path, data={"grace_seconds": "-1", "csrf_token": token, "confirmed": "yes"})
    assert bad.status_code == 400 and "grace seconds" in bad.get_data(as_text=True)
    assert key_row(sql, key_id)["status"] == "active"
    post_confirmed(client, path, {"grace_seconds": "0"}, token)
    again = client.post(path, data={"grace_seconds": "0", "csrf_token": token, "confirmed": "yes"})
    assert again.status_code == 409 and len(audit_of_key(sql, "rotate", key_id)) == 1


def test_set_a_keys_budget_and_models_within_the_users_cap(client, sql):
    user, _ = create_user(client)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    user_budget = {"budget": "20", "budget_period": "daily", "allowed_models": ""}
    post_confirmed(client, f"/dashboard/users/{user['id']}/budget", user_budget, token)
    path = f"/dashboard/users/{user['id']}/keys/{key_id}/budget"
    above = client.post(path, data={"budget": "50", "budget_period": "daily", "csrf_token": token, "confirmed": "yes"})
    assert above.status_code == 422 and "cannot exceed its user" in above.get_data(as_text=True)
    form = {"budget": "5", "budget_period": "daily", "allowed_models": "openai/gpt-4o-mini"}
    assert post_confirmed(client, path, form, token).status_code == 302
    row = key_row(sql, key_id)
    assert (row["budget"], row["budget_period"], row["allowed_models"]) == (Decimal(5), "daily", ["openai/gpt-4o-mini"])
    (audit,) = audit_of_key(sql, "update", key_id)
    assert audit["actor"] == "admin:bootstrap" and audit["details"]["allowed_models"] == ["openai/gpt-4o-mini"]
    page = client.get(f"/dashboard/users/{user['id']}/keys/{key_id}").get_data(as_text=True)
    assert "openai/gpt-4o-mini" in page and "$5.00" in page


def test_a_bad_key_budget_is_a_400_and_needs_the_csrf_token(client, sql):
    user, _ = create_user(client)
    key_id = first_key_id(sql, user["id"])
    token = signed_in(client)
    path = f"/dashboard/users/{user['id']}/keys/{key_id}/budget"
    bad = client.post(path, data={"budget": "-1", "budget_period": "yearly", "csrf_token": token, "confirmed": "yes"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "budget period" in page and "budget" in page
    forged = client.post(path, data={"budget": "1", "confirmed": "yes"})
    assert forged.status_code == 400
    assert key_row(sql, key_id)["budget"] is None and audit_of_key(sql, "update", key_id) == []
