"""No key outgrows its grant: a key's own spend cap bounds the caps it sets and the keys it mints
or rotates, rotation keeps every grant, scopes apply to /admin (and the dashboard), and each
refusal is audited."""

from decimal import Decimal

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.dashboard import csrf_of, sign_in

CAP = {"budget": "5.00", "budget_period": "monthly", "budget_alert_thresholds": [0.5, 0.8, 1.0]}
KEPT_ON_ROTATION = (
    "name, environment, scopes, ip_allowlist::text[] AS ip_allowlist, expires_at, allowed_models, budget,"
    " budget_period, budget_alert_thresholds, budget_period_start, budget_spent, budget_alerted"
)


def cap_key(client, user_id, key_id, **cap):
    """Support sets a spend cap on a key (PATCH /admin/users/<id>/api-keys/<key_id>)."""
    response = client.patch(f"/admin/users/{user_id}/api-keys/{key_id}", json=cap or CAP, headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def capped_key(client):
    """A user, their unscoped first key, and a second key support capped at CAP: (user, key, capped, capped_key)."""
    user, key = create_user(client)
    capped, capped_full = create_key(client, key, name="capped")
    cap_key(client, user["id"], capped["id"])
    return user, key, capped, capped_full


def caps(sql):
    return sql("SELECT name, budget, budget_period, budget_alert_thresholds FROM api_keys ORDER BY id")


def refusals(sql):
    return sql(
        "SELECT actor, user_id, api_key_id, details FROM api_key_audit_logs WHERE action = 'grant_refused' ORDER BY id"
    )


def test_a_capped_key_cannot_lift_or_loosen_its_own_cap(client, sql):
    user, _, capped, capped_full = capped_key(client)
    path, auth = f"/user/api-keys/{capped['id']}", bearer(capped_full)
    before = caps(sql)
    for change, looser in [
        ({"budget": None}, ["budget"]),
        ({"budget": "5.01"}, ["budget"]),
        ({"budget_period": "daily"}, ["budget_period"]),
        ({"budget_period": "never", "budget": "1"}, ["budget_period"]),
        ({"budget_alert_thresholds": [0.5]}, ["budget_alert_thresholds"]),
    ]:
        error = assert_error(client.patch(path, json=change, headers=auth), 403, "budget_escalation")
        assert error["details"] == {"looser": looser, "granter_budget": CAP}, change
    assert caps(sql) == before

    # Tighter is allowed, and is then the key's own ceiling: lowered caps stay lowered.
    lowered = client.patch(path, json={"budget": "4", "budget_alert_thresholds": [0.5, 0.8, 0.9, 1.0]}, headers=auth)
    assert lowered.status_code == 200 and lowered.get_json()["budget"] == "4.00"
    assert_error(client.patch(path, json={"budget": "5"}, headers=auth), 403, "budget_escalation")
    # Support still sets any cap, or none.
    assert cap_key(client, user["id"], capped["id"], budget=None)["budget"] is None


def test_a_capped_key_cannot_mint_rotate_or_change_a_looser_key(client, sql):
    user, key, capped, capped_full = capped_key(client)
    auth = bearer(capped_full)
    before = sql("SELECT id, name, status, budget FROM api_keys ORDER BY id")
    # The user's first key has no cap: rotating it would hand the capped key an uncapped one.
    default = sql("SELECT id FROM api_keys WHERE name = 'default'")[0]["id"]
    assert_error(client.post(f"/user/api-keys/{default}/rotate", json={}, headers=auth), 403, "budget_escalation")
    response = client.patch(f"/user/api-keys/{default}", json={"ip_allowlist": []}, headers=auth)
    assert_error(response, 403, "budget_escalation")
    for body in (
        {"budget": None},
        {"budget": "10"},
        {"budget_period": "weekly"},
        {"budget_alert_thresholds": [1.0]},
    ):
        response = client.post("/user/api-keys", json={"name": "sibling", **body}, headers=auth)
        assert_error(response, 403, "budget_escalation")
    assert sql("SELECT id, name, status, budget FROM api_keys ORDER BY id") == before
    # The uncapped key's rules are unchanged: it may still lift the cap of the capped one.
    lifted = client.patch(f"/user/api-keys/{capped['id']}", json={"budget": None}, headers=bearer(key))
    assert lifted.status_code == 200 and lifted.get_json()["budget"] is None


def test_a_capped_key_mints_siblings_capped_as_tightly(client, sql):
    user, _, capped, capped_full = capped_key(client)
    auth = bearer(capped_full)
    # Without budget fields the new key gets its creator's cap, not none.
    inherited = client.post("/user/api-keys", json={"name": "like-me"}, headers=auth)
    assert inherited.status_code == 201 and inherited.get_json()["key"]["budget"] == "5.00"
    smaller = client.post("/user/api-keys", json={"name": "smaller", "budget": "2"}, headers=auth)
    assert smaller.status_code == 201
    more_alerts = {"name": "watched", "budget": "5", "budget_alert_thresholds": [0.25, 0.5, 0.8, 1.0]}
    assert client.post("/user/api-keys", json=more_alerts, headers=auth).status_code == 201
    thresholds = [Decimal("0.5"), Decimal("0.8"), Decimal("1.0")]
    assert caps(sql)[2:] == [
        {"name": "like-me", "budget": Decimal(5), "budget_period": "monthly", "budget_alert_thresholds": thresholds},
        {"name": "smaller", "budget": Decimal(2), "budget_period": "monthly", "budget_alert_thresholds": thresholds},
        {
            "name": "watched",
            "budget": Decimal(5),
            "budget_period": "monthly",
            "budget_alert_thresholds": [Decimal("0.25")] + thresholds,
        },
    ]
    # The tighter sibling can act on keys within its own, smaller cap only.
    sibling_key = smaller.get_json()["api_key"]
    like_me = inherited.get_json()["key"]["id"]
    response = client.patch(f"/user/api-keys/{like_me}", json={"name": "x"}, headers=bearer(sibling_key))
    assert_error(response, 403, "budget_escalation")
    # A user cap still bounds a key's (the existing 422).
    client.patch(f"/admin/users/{user['id']}", json={"budget": "1"}, headers=ADMIN)
    body = {"name": "over-user", "budget": "2"}
    assert_error(client.post("/user/api-keys", json=body, headers=auth), 422, "budget_above_user_budget")


@pytest.mark.parametrize("route", ["user", "admin"])
def test_rotation_keeps_every_grant_and_the_periods_spend(client, sql, route):
    user, key = create_user(client)
    fields = {
        "scopes": ["usage:read", "chat:write"],
        "ip_allowlist": ["127.0.0.0/8"],
        "allowed_models": ["openai/*"],
        "expires_in_days": 30,
    }
    old, _ = create_key(client, key, name="svc", environment="test", **fields)
    cap_key(client, user["id"], old["id"], budget="3", budget_period="weekly", budget_alert_thresholds=[0.7])
    sql(
        "UPDATE api_keys SET budget_spent = 0.25, budget_alerted = 0.7,"
        " budget_period_start = budget_period_start(budget_period, now()) WHERE id = %s",
        (old["id"],),
    )
    path = f"/user/api-keys/{old['id']}/rotate"
    headers = bearer(key)
    if route == "admin":
        path, headers = f"/admin/users/{user['id']}/api-keys/{old['id']}/rotate", ADMIN
    response = client.post(path, json={"grace_seconds": 60}, headers=headers)
    assert response.status_code == 201, response.get_json()
    new, new_full = response.get_json()["key"], response.get_json()["api_key"]

    [kept_old] = sql(f"SELECT {KEPT_ON_ROTATION} FROM api_keys WHERE id = %s", (old["id"],))
    [kept_new] = sql(f"SELECT {KEPT_ON_ROTATION} FROM api_keys WHERE id = %s", (new["id"],))
    assert kept_new == kept_old
    assert kept_new["budget"] == Decimal(3) and kept_new["budget_spent"] == Decimal("0.25")
    assert kept_new["expires_at"] is not None and kept_new["ip_allowlist"] == ["127.0.0.0/8"]
    shown = {name: new[name] for name in ("scopes", "ip_allowlist", "allowed_models", "budget", "budget_period")}
    assert shown == {
        **{name: fields[name] for name in shown if name in fields},
        "budget": "3.00",
        "budget_period": "weekly",
    }
    assert new["expires_at"] == old["expires_at"] and new["budget_alert_thresholds"] == [0.7]
    # The replacement's cap carries on from the spend so far: rotating never resets a cap.
    [cap] = client.get("/user/balance", headers=bearer(new_full)).get_json()["budgets"]
    assert (cap["scope"], cap["budget"], cap["spent"]) == ("key", "3.00", "0.25")


def admin_with_key(client, scopes):
    """An admin user and a second key of theirs with ``scopes``: (admin, full key, key row)."""
    admin, admin_key = create_user(client, role="admin")
    row, full = create_key(client, admin_key, name="scoped", scopes=scopes)
    return admin, full, row


def test_a_scoped_admin_key_is_refused_on_admin_and_audited(client, sql):
    admin, full, row = admin_with_key(client, ["models:read"])
    target, _ = create_user(client)
    auth = bearer(full)
    error = assert_error(client.get("/admin/users", headers=auth), 403, "insufficient_scope")
    assert error["details"] == {"required": "admin:read"}
    grant = {"amount": "100.00", "reason": "self-service"}
    error = assert_error(
        client.post(f"/admin/users/{target['id']}/credits", json=grant, headers=auth), 403, "insufficient_scope"
    )
    assert error["details"] == {"required": "admin:write"}
    new_admin = {"email": "sneaky@example.com", "role": "admin"}
    assert_error(client.post("/admin/users", json=new_admin, headers=auth), 403, "insufficient_scope")

    assert sql("SELECT credits FROM users WHERE id = %s", (target["id"],)) == [{"credits": 0}]
    assert sql("SELECT id FROM users WHERE email = 'sneaky@example.com'") == []
    rows = sql(
        "SELECT actor, user_id, api_key_id, details->>'reason' AS reason, details->>'path' AS path"
        " FROM api_key_audit_logs WHERE action = 'auth_failure' ORDER BY id"
    )
    assert rows == [
        {
            "actor": f"user:{admin['id']}",
            "user_id": admin["id"],
            "api_key_id": row["id"],
            "reason": "insufficient_scope",
            "path": path,
        }
        for path in ("/admin/users", f"/admin/users/{target['id']}/credits", "/admin/users")
    ]
    # The bootstrap key and an unscoped admin key are unaffected.
    assert client.post(f"/admin/users/{target['id']}/credits", json=grant, headers=ADMIN).status_code == 200


def test_admin_read_looks_and_admin_write_acts(client, sql):
    _, reader, _ = admin_with_key(client, ["admin:read"])
    target, _ = create_user(client)
    grant = {"amount": "1.00", "reason": "support"}
    assert client.get("/admin/users", headers=bearer(reader)).status_code == 200
    assert client.get(f"/admin/users/{target['id']}/api-keys", headers=bearer(reader)).status_code == 200
    response = client.post(f"/admin/users/{target['id']}/credits", json=grant, headers=bearer(reader))
    assert_error(response, 403, "insufficient_scope")
    _, writer, _ = admin_with_key(client, ["admin:read", "admin:write"])
    assert client.post(f"/admin/users/{target['id']}/credits", json=grant, headers=bearer(writer)).status_code == 200
    assert sql("SELECT credits FROM users WHERE id = %s", (target["id"],)) == [{"credits": Decimal("1.00")}]


def test_a_scoped_key_cannot_grant_admin_scopes_it_lacks(client, sql):
    _, manager, _ = admin_with_key(client, ["keys:manage", "admin:read"])
    body = {"name": "writer", "scopes": ["admin:read", "admin:write"]}
    error = assert_error(client.post("/user/api-keys", json=body, headers=bearer(manager)), 403, "scope_escalation")
    assert error["details"]["lacking"] == ["admin:write"]
    allowed = client.post("/user/api-keys", json={"name": "reader", "scopes": ["admin:read"]}, headers=bearer(manager))
    assert allowed.status_code == 201


def test_grant_refusals_are_audited(client, sql):
    user, _, capped, capped_full = capped_key(client)
    auth = bearer(capped_full)
    assert_error(
        client.patch(f"/user/api-keys/{capped['id']}", json={"budget": None}, headers=auth), 403, "budget_escalation"
    )
    body = {"name": "wide", "scopes": [], "allowed_models": []}
    _, narrow = create_key(client, capped_full, name="narrow", scopes=["keys:manage"], allowed_models=["openai/*"])
    assert_error(client.post("/user/api-keys", json=body, headers=bearer(narrow)), 403, "scope_escalation")
    body = {"name": "wide", "allowed_models": []}
    assert_error(client.post("/user/api-keys", json=body, headers=bearer(narrow)), 403, "model_escalation")
    narrow_id = sql("SELECT id FROM api_keys WHERE name = 'narrow'")[0]["id"]

    rows = refusals(sql)
    assert [(row["actor"], row["user_id"], row["api_key_id"]) for row in rows] == [
        (f"user:{user['id']}", user["id"], capped["id"]),
        (f"user:{user['id']}", user["id"], narrow_id),
        (f"user:{user['id']}", user["id"], narrow_id),
    ]
    assert [row["details"]["code"] for row in rows] == ["budget_escalation", "scope_escalation", "model_escalation"]
    assert rows[0]["details"] == {
        "code": "budget_escalation",
        "target_key_id": capped["id"],
        "looser": ["budget"],
        "granter_budget": CAP,
    }
    assert rows[2]["details"]["lacking"] == ["*"]
    # The key holder sees them in their own audit log.
    logs = client.get("/user/api-keys/audit-logs?action=grant_refused", headers=bearer(narrow)).get_json()
    assert logs["total_logs"] == 3


def test_the_dashboard_follows_the_admin_keys_scopes(client, sql):
    _, unrelated, _ = admin_with_key(client, ["models:read"])
    response = sign_in(client, unrelated)
    assert response.status_code == 403 and "admin:read" in response.get_data(as_text=True)

    _, reader, _ = admin_with_key(client, ["admin:read"])
    target, _ = create_user(client)
    assert sign_in(client, reader).status_code == 302
    assert client.get(f"/dashboard/users/{target['id']}").status_code == 200
    token = csrf_of(client, f"/dashboard/users/{target['id']}")
    response = client.post(
        f"/dashboard/users/{target['id']}/credits", data={"amount": "50", "reason": "x", "csrf_token": token}
    )
    assert response.status_code == 403
    assert sql("SELECT credits FROM users WHERE id = %s", (target["id"],)) == [{"credits": 0}]
    reasons = sql(
        "SELECT details->>'reason' AS reason, details->>'path' AS path FROM api_key_audit_logs"
        " WHERE action = 'auth_failure' ORDER BY id"
    )
    assert reasons == [
        {"reason": "insufficient_scope", "path": "/dashboard/login"},
        {"reason": "insufficient_scope", "path": f"/dashboard/users/{target['id']}/credits"},
    ]
    assert client.post("/dashboard/logout", data={"csrf_token": token}).status_code == 302
