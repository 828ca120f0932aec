"""POST/GET/PATCH /admin/users: users are created with their first key, listed, changed, suspended."""

import hashlib
import hmac

from tests.conftest import KEY_HASH_SECRET
from tests.helpers import ADMIN, assert_error, bearer, create_user


def test_create_user_returns_user_and_first_key_shown_once(client, sql):
    response = client.post(
        "/admin/users", json={"email": "Ada@Example.com", "username": "ada", "credits": "12.50"}, headers=ADMIN
    )
    assert response.status_code == 201
    body = response.get_json()
    user, full_key = body["user"], body["api_key"]
    assert user["email"] == "Ada@Example.com" and user["username"] == "ada"
    assert (user["role"], user["status"], user["plan"], user["credits"]) == ("user", "active", "trial", "12.50")
    assert full_key.startswith("gw_live_") and len(full_key) >= 8 + 32
    assert body["key"]["masked_key"] == f"{full_key[:11]}…{full_key[-4:]}"

    [row] = sql("SELECT user_id, name, key_hash, prefix, last4, status FROM api_keys")
    expected_hash = hmac.new(KEY_HASH_SECRET.encode(), full_key.encode(), hashlib.sha256).hexdigest()
    assert row == {
        "user_id": user["id"],
        "name": "default",
        "key_hash": expected_hash,
        "prefix": full_key[:11],
        "last4": full_key[-4:],
        "status": "active",
    }
    balance = client.get("/user/balance", headers=bearer(full_key))
    assert balance.status_code == 200 and balance.get_json()["user_id"] == user["id"]


def test_opening_credits_are_a_ledger_row(client, sql):
    user, _ = create_user(client, credits="12.50")
    [entry] = sql("SELECT amount::text, balance_after::text, kind, reason, actor FROM credit_transactions")
    assert entry == {
        "amount": "12.5000000000",
        "balance_after": "12.5000000000",
        "kind": "initial",
        "reason": "opening balance",
        "actor": "admin:bootstrap",
    }
    assert sql("SELECT credits::text FROM users WHERE id = %s", (user["id"],)) == [{"credits": "12.5000000000"}]
    [audit] = sql("SELECT actor, details FROM api_key_audit_logs WHERE action = 'credits_adjusted'")
    assert audit == {
        "actor": "admin:bootstrap",
        "details": {"amount": "12.50", "reason": "opening balance", "balance_after": "12.50"},
    }


def test_user_without_credits_starts_at_zero_with_no_ledger_rows(client, sql):
    user, _ = create_user(client)
    assert user["credits"] == "0.00"
    assert sql("SELECT count(*) AS n FROM credit_transactions") == [{"n": 0}]


def test_user_creation_is_audited(client, sql):
    user, _ = create_user(client, role="admin", plan="dev")
    rows = sql("SELECT action, actor, user_id, details FROM api_key_audit_logs ORDER BY id")
    assert [r["action"] for r in rows] == ["user_created", "create"]
    assert rows[0]["details"] == {"plan": "dev", "role": "admin"}
    assert all(r["actor"] == "admin:bootstrap" and r["user_id"] == user["id"] for r in rows)


def test_duplicate_email_is_409_whatever_the_case(client, sql):
    create_user(client, email="dup@example.com")
    response = client.post("/admin/users", json={"email": "DUP@example.com"}, headers=ADMIN)
    error = assert_error(response, 409, "email_taken")
    assert error["details"] == {"email": "DUP@example.com"}
    assert sql("SELECT count(*) AS n FROM users") == [{"n": 1}]
    assert sql("SELECT count(*) AS n FROM api_keys") == [{"n": 1}]


def test_invalid_user_body_is_422_naming_the_field(client, sql):
    cases = [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "credits": "-1"}, "credits"),
        ({"email": "a@example.com", "credits": "lots"}, "credits"),
        ({"email": "a@example.com", "credits": "NaN"}, "credits"),
        ({"email": "a@example.com", "role": "root"}, "role"),
        ({"email": "a@example.com", "username": ""}, "username"),
        ({"email": "a@example.com", "is_admin": True}, "is_admin"),
    ]
    for body, field in cases:
        error = assert_error(client.post("/admin/users", json=body, headers=ADMIN), 422, "validation_error")
        assert field in error["details"]["fields"]["json"], body
    assert sql("SELECT count(*) AS n FROM users") == [{"n": 0}]


def test_unknown_plan_is_422(client):
    response = client.post("/admin/users", json={"email": "a@example.com", "plan": "platinum"}, headers=ADMIN)
    assert assert_error(response, 422, "unknown_plan")["details"] == {"plan": "platinum"}


def test_list_users_filters_by_email_and_status_a_page_at_a_time(client):
    ids = [create_user(client, email=f"{name}@example.com")[0]["id"] for name in ("ann", "bob", "anna_b", "annaxb")]
    client.patch(f"/admin/users/{ids[1]}", json={"status": "suspended"}, headers=ADMIN)

    everyone = client.get("/admin/users?page_size=3", headers=ADMIN).get_json()
    assert (everyone["total"], everyone["page"], everyone["page_size"]) == (4, 1, 3)
    assert [u["id"] for u in everyone["users"]] == ids[:3]
    second = client.get("/admin/users?page_size=3&page=2", headers=ADMIN).get_json()
    assert [u["id"] for u in second["users"]] == ids[3:]

    by_email = client.get("/admin/users?email=ANN", headers=ADMIN).get_json()
    assert [u["id"] for u in by_email["users"]] == [ids[0], ids[2], ids[3]]
    # "_" is a literal character in the filter, not a LIKE wildcard.
    literal = client.get("/admin/users?email=anna_", headers=ADMIN).get_json()
    assert [u["id"] for u in literal["users"]] == [ids[2]]
    # A backslash is literal too: n\a must not match "anna".
    assert client.get("/admin/users?email=n%5Ca", headers=ADMIN).get_json()["total"] == 0
    suspended = client.get("/admin/users?status=suspended", headers=ADMIN).get_json()
    assert (suspended["total"], [u["id"] for u in suspended["users"]]) == (1, [ids[1]])


def test_invalid_user_list_query_is_422(client):
    for query in ("status=gone", "page=0", "page_size=0", "page_size=501", "page=x"):
        assert_error(client.get(f"/admin/users?{query}", headers=ADMIN), 422, "validation_error")


def test_get_user_shows_one_user(client):
    user, _ = create_user(client, username="grace", credits="1")
    response = client.get(f"/admin/users/{user['id']}", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == user


def test_unknown_user_is_404(client):
    assert_error(client.get("/admin/users/999", headers=ADMIN), 404, "user_not_found")
    assert_error(client.patch("/admin/users/999", json={"status": "active"}, headers=ADMIN), 404, "user_not_found")


def test_suspended_user_keys_stop_at_once_and_work_again_when_reactivated(client, sql):
    user, key = create_user(client)
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200

    response = client.patch(f"/admin/users/{user['id']}", json={"status": "suspended"}, headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["status"] == "suspended"
    error = assert_error(client.get("/user/balance", headers=bearer(key)), 401, "invalid_api_key")
    assert error["details"] == {"reason": "user_suspended"}

    client.patch(f"/admin/users/{user['id']}", json={"status": "active"}, headers=ADMIN)
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200
    changes = sql("SELECT details FROM api_key_audit_logs WHERE action = 'user_updated' ORDER BY id")
    assert [c["details"]["changes"] for c in changes] == [{"status": "suspended"}, {"status": "active"}]


def test_patch_changes_role_and_plan(client, sql):
    user, key = create_user(client)
    response = client.patch(f"/admin/users/{user['id']}", json={"role": "admin", "plan": "team"}, headers=ADMIN)
    assert response.status_code == 200
    assert (response.get_json()["role"], response.get_json()["plan"]) == ("admin", "team")
    assert sql("SELECT role, plan FROM users") == [{"role": "admin", "plan": "team"}]
    assert client.get("/admin/users", headers=bearer(key)).status_code == 200
    assert client.get("/user/balance", headers=bearer(key)).get_json()["plan"] == "team"


def test_invalid_user_change_is_422_and_changes_nothing(client, sql):
    user, _ = create_user(client)
    cases = [
        ({"status": "deleted"}, "validation_error"),
        ({"role": "owner"}, "validation_error"),
        ({"credits": "5"}, "validation_error"),
        ({"plan": "platinum"}, "unknown_plan"),
    ]
    for body, code in cases:
        assert_error(client.patch(f"/admin/users/{user['id']}", json=body, headers=ADMIN), 422, code)
    assert sql("SELECT status, role, plan FROM users") == [{"status": "active", "role": "user", "plan": "trial"}]
