"""/user/api-keys: create, list, update, rotate and revoke your own keys, each audited."""

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import requests

from tests.conftest import KEY_HASH_SECRET
from tests.helpers import assert_error, bearer, create_key, create_user, live_server, run_together

KEY_FORMAT = re.compile(r"^gw_(live|test)_[A-Za-z0-9_-]{32,}$")


def audit_actions(sql, user_id):
    """The user's audit actions, oldest first."""
    return [
        r["action"] for r in sql("SELECT action FROM api_key_audit_logs WHERE user_id = %s ORDER BY id", (user_id,))
    ]


def test_create_key_reveals_it_once_and_stores_only_its_hmac(client, sql):
    user, key = create_user(client)
    response = client.post(
        "/user/api-keys",
        json={"name": "ci", "environment": "test", "expires_in_days": 30, "ip_allowlist": ["10.0.0.1/8"]},
        headers=bearer(key),
    )
    assert response.status_code == 201
    body = response.get_json()
    new_key, shown = body["api_key"], body["key"]
    assert KEY_FORMAT.match(new_key) and new_key.startswith("gw_test_")
    assert shown["masked_key"] == f"{new_key[:11]}…{new_key[-4:]}"
    assert (shown["name"], shown["environment"], shown["status"]) == ("ci", "test", "active")
    assert shown["ip_allowlist"] == ["10.0.0.0/8"] and shown["scopes"] == []
    expires = datetime.fromisoformat(shown["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)

    [row] = sql("SELECT key_hash, prefix, last4 FROM api_keys WHERE id = %s", (shown["id"],))
    assert row["key_hash"] == hmac.new(KEY_HASH_SECRET.encode(), new_key.encode(), hashlib.sha256).hexdigest()
    assert (row["prefix"], row["last4"]) == (new_key[:11], new_key[-4:])
    [audit] = sql(
        "SELECT actor, details FROM api_key_audit_logs WHERE action = 'create' AND api_key_id = %s", (shown["id"],)
    )
    assert audit == {"actor": f"user:{user['id']}", "details": {"name": "ci", "key": shown["masked_key"]}}
    assert (
        client.get("/user/balance", headers=bearer(new_key), environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code
        == 200
    )


def test_list_keys_shows_only_your_keys_masked(client):
    _, key = create_user(client)
    _, other_key = create_user(client)
    extra, _ = create_key(client, key, name="second")
    response = client.get("/user/api-keys", headers=bearer(key))
    assert response.status_code == 200
    listed = response.get_json()["keys"]
    assert [k["name"] for k in listed] == ["second", "default"]
    assert listed[0] == extra
    assert listed[1]["masked_key"] == f"{key[:11]}…{key[-4:]}"
    text = response.get_data(as_text=True)
    assert key not in text and "key_hash" not in text and other_key[:11] + "…" + other_key[-4:] not in text


def test_invalid_key_body_is_422_naming_the_field(client, sql):
    _, key = create_user(client)
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "environment": "prod"}, "environment"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "ip_allowlist": ["10.0.0.300"]}, "ip_allowlist"),
        ({"name": "x", "scopes": ["admin:all"]}, "scopes"),
        ({"name": "x", "owner": 1}, "owner"),
    ]
    for body, field in cases:
        error = assert_error(client.post("/user/api-keys", json=body, headers=bearer(key)), 422, "validation_error")
        assert field in error["details"]["fields"]["json"], body
    assert sql("SELECT count(*) AS n FROM api_keys") == [{"n": 1}]


def test_key_names_are_unique_per_user_among_active_keys(client, sql):
    user, key = create_user(client)
    _, other_key = create_user(client)
    created, _ = create_key(client, key, name="ci")
    assert_error(client.post("/user/api-keys", json={"name": "ci"}, headers=bearer(key)), 409, "key_name_taken")
    assert audit_actions(sql, user["id"]).count("create") == 2  # the refused one left no audit row
    create_key(client, other_key, name="ci")  # another user may use the name
    assert client.delete(f"/user/api-keys/{created['id']}", headers=bearer(key)).status_code == 200
    create_key(client, key, name="ci")  # a revoked key's name is free again


def test_patch_changes_name_scopes_allowlist_and_expiry(client, sql):
    user, key = create_user(client)
    extra, extra_key = create_key(client, key, name="old", expires_in_days=5)
    response = client.patch(
        f"/user/api-keys/{extra['id']}",
        json={"name": "new", "scopes": ["models:read"], "ip_allowlist": ["192.168.0.0/16"], "expires_in_days": None},
        headers=bearer(key),
    )
    assert response.status_code == 200
    changed = response.get_json()
    assert (changed["name"], changed["scopes"], changed["ip_allowlist"]) == ("new", ["models:read"], ["192.168.0.0/16"])
    assert changed["expires_at"] is None
    [audit] = sql("SELECT details FROM api_key_audit_logs WHERE action = 'update'")
    assert audit["details"] == {
        "name": "new",
        "scopes": ["models:read"],
        "ip_allowlist": ["192.168.0.0/16"],
        "expires_in_days": None,
    }
    assert client.get("/user/balance", headers=bearer(extra_key)).status_code == 403  # 127.0.0.1 now outside


def test_patch_errors(client, sql):
    user, key = create_user(client)
    _, other_key = create_user(client)
    extra, _ = create_key(client, key, name="extra")
    others, _ = create_key(client, other_key, name="theirs")
    assert_error(
        client.patch(f"/user/api-keys/{extra['id']}", json={"name": "default"}, headers=bearer(key)),
        409,
        "key_name_taken",
    )
    assert_error(
        client.patch(f"/user/api-keys/{others['id']}", json={"name": "mine"}, headers=bearer(key)),
        404,
        "api_key_not_found",
    )
    assert_error(
        client.patch("/user/api-keys/999", json={"name": "mine"}, headers=bearer(key)), 404, "api_key_not_found"
    )
    assert_error(
        client.patch(f"/user/api-keys/{extra['id']}", json={"scopes": ["root"]}, headers=bearer(key)),
        422,
        "validation_error",
    )
    client.delete(f"/user/api-keys/{extra['id']}", headers=bearer(key))
    assert_error(
        client.patch(f"/user/api-keys/{extra['id']}", json={"name": "x"}, headers=bearer(key)), 409, "api_key_inactive"
    )
    assert sql("SELECT name FROM api_keys WHERE id = %s", (others["id"],)) == [{"name": "theirs"}]
    assert "update" not in audit_actions(sql, user["id"])


def test_rotated_key_stops_working_immediately(client, sql):
    user, key = create_user(client)
    [old] = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"]
    response = client.post(f"/user/api-keys/{old['id']}/rotate", json={}, headers=bearer(key))
    assert response.status_code == 201
    new_key, new = response.get_json()["api_key"], response.get_json()["key"]
    assert KEY_FORMAT.match(new_key) and new_key != key
    assert (new["name"], new["status"]) == ("default", "active")

    error = assert_error(client.get("/user/balance", headers=bearer(key)), 401, "invalid_api_key")
    assert error["details"] == {"reason": "rotated"}
    assert client.get("/user/balance", headers=bearer(new_key)).status_code == 200
    assert sql("SELECT status FROM api_keys WHERE id = %s", (old["id"],)) == [{"status": "rotated"}]
    [audit] = sql("SELECT api_key_id, details FROM api_key_audit_logs WHERE action = 'rotate'")
    assert audit["api_key_id"] == old["id"]
    assert (audit["details"]["new_key_id"], audit["details"]["grace_seconds"]) == (new["id"], 0)


def test_rotated_key_works_until_the_grace_period_ends(client, sql):
    _, key = create_user(client)
    old, old_key = create_key(
        client, key, name="svc", scopes=["usage:read", "keys:manage"], ip_allowlist=["127.0.0.0/8"]
    )
    response = client.post(f"/user/api-keys/{old['id']}/rotate", json={"grace_seconds": 3600}, headers=bearer(key))
    new_key, new = response.get_json()["api_key"], response.get_json()["key"]
    # The replacement keeps the old key's settings.
    assert (new["scopes"], new["ip_allowlist"]) == (["usage:read", "keys:manage"], ["127.0.0.0/8"])
    [row] = sql("SELECT status, grace_until - now() AS left FROM api_keys WHERE id = %s", (old["id"],))
    assert row["status"] == "rotated" and timedelta(minutes=59) < row["left"] <= timedelta(hours=1)

    assert client.get("/user/balance", headers=bearer(old_key)).status_code == 200
    assert client.get("/user/balance", headers=bearer(new_key)).status_code == 200
    sql("UPDATE api_keys SET grace_until = now() - interval '1 second' WHERE id = %s", (old["id"],))
    error = assert_error(client.get("/user/balance", headers=bearer(old_key)), 401, "invalid_api_key")
    assert error["details"] == {"reason": "rotated"}
    assert client.get("/user/balance", headers=bearer(new_key)).status_code == 200


def test_rotate_errors(client, sql):
    _, key = create_user(client)
    _, other_key = create_user(client)
    extra, _ = create_key(client, key, name="extra")
    others, _ = create_key(client, other_key, name="theirs")
    rotate = f"/user/api-keys/{extra['id']}/rotate"
    assert_error(client.post(rotate, json={"grace_seconds": -1}, headers=bearer(key)), 422, "validation_error")
    assert_error(client.post(rotate, json={"grace_seconds": 8 * 86400}, headers=bearer(key)), 422, "validation_error")
    assert_error(
        client.post(f"/user/api-keys/{others['id']}/rotate", json={}, headers=bearer(key)), 404, "api_key_not_found"
    )
    assert client.post(rotate, json={"grace_seconds": 60}, headers=bearer(key)).status_code == 201
    assert_error(client.post(rotate, json={}, headers=bearer(key)), 409, "api_key_inactive")
    expired, _ = create_key(client, key, name="expired", expires_in_days=1)
    sql("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = %s", (expired["id"],))
    expired_rotate = client.post(f"/user/api-keys/{expired['id']}/rotate", json={}, headers=bearer(key))
    assert_error(expired_rotate, 409, "api_key_inactive")
    assert sql("SELECT count(*) AS n FROM api_keys WHERE name = 'expired'") == [{"n": 1}]


def test_revoked_key_is_rejected_on_the_next_request(client, sql):
    user, key = create_user(client)
    extra, extra_key = create_key(client, key, name="extra")
    response = client.delete(f"/user/api-keys/{extra['id']}", headers=bearer(key))
    assert response.status_code == 200
    assert response.get_json()["status"] == "revoked" and response.get_json()["revoked_at"]
    error = assert_error(client.get("/user/balance", headers=bearer(extra_key)), 401, "invalid_api_key")
    assert error["details"] == {"reason": "revoked"}
    [audit] = sql("SELECT api_key_id, details FROM api_key_audit_logs WHERE action = 'delete'")
    assert audit == {"api_key_id": extra["id"], "details": {"forced": False, "key": extra["masked_key"]}}
    assert_error(client.delete(f"/user/api-keys/{extra['id']}", headers=bearer(key)), 409, "api_key_inactive")


def test_last_active_key_needs_force_to_revoke(client, sql):
    user, key = create_user(client)
    _, other_key = create_user(client)
    [only] = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"]
    assert_error(client.delete(f"/user/api-keys/{only['id']}", headers=bearer(key)), 409, "last_active_key")
    assert client.get("/user/balance", headers=bearer(key)).status_code == 200
    assert "delete" not in audit_actions(sql, user["id"])
    assert_error(
        client.delete(f"/user/api-keys/{only['id']}?force=true", headers=bearer(other_key)), 404, "api_key_not_found"
    )

    assert client.delete(f"/user/api-keys/{only['id']}?force=true", headers=bearer(key)).status_code == 200
    assert_error(client.get("/user/balance", headers=bearer(key)), 401, "invalid_api_key")
    assert sql("SELECT details FROM api_key_audit_logs WHERE action = 'delete'")[0]["details"]["forced"] is True


def test_concurrent_revocations_never_remove_the_last_active_key(make_app, sql):
    # Ten keys each revoke themselves at once: exactly one must be refused as the last active key.
    app = make_app(DB_POOL_MAX=30)
    client = app.test_client()
    _, first = create_user(client)
    full_keys = [first] + [create_key(client, first, name=f"k{n}")[1] for n in range(9)]
    ids = {k["masked_key"]: k["id"] for k in client.get("/user/api-keys", headers=bearer(first)).get_json()["keys"]}
    with live_server(app) as url:

        def revoke_itself(full_key):
            key_id = ids[f"{full_key[:11]}…{full_key[-4:]}"]
            return requests.delete(f"{url}/user/api-keys/{key_id}", headers=bearer(full_key), timeout=30)

        statuses = sorted(response.status_code for response in run_together(revoke_itself, full_keys))
    assert statuses == [200] * 9 + [409]
    assert sql("SELECT count(*) AS n FROM api_keys WHERE status = 'active'") == [{"n": 1}]


def test_delete_errors(client):
    _, key = create_user(client)
    assert_error(client.delete("/user/api-keys/999", headers=bearer(key)), 404, "api_key_not_found")
    [only] = client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"]
    assert_error(
        client.delete(f"/user/api-keys/{only['id']}?force=maybe", headers=bearer(key)), 422, "validation_error"
    )


def test_scopes_limit_what_a_key_may_do(client):
    _, key = create_user(client)
    _, chat_key = create_key(client, key, name="chat", scopes=["chat:write"])
    _, manage_key = create_key(client, key, name="manage", scopes=["keys:manage"])
    error = assert_error(
        client.post("/user/api-keys", json={"name": "x"}, headers=bearer(chat_key)), 403, "insufficient_scope"
    )
    assert error["details"] == {"required": "keys:manage"}
    assert_error(client.get("/user/api-keys", headers=bearer(chat_key)), 403, "insufficient_scope")
    assert_error(client.get("/user/api-keys/audit-logs", headers=bearer(chat_key)), 403, "insufficient_scope")
    assert_error(client.get("/user/balance", headers=bearer(chat_key)), 403, "insufficient_scope")
    assert client.post("/user/api-keys", json={"name": "y"}, headers=bearer(manage_key)).status_code == 201
    assert client.get("/user/api-keys", headers=bearer(manage_key)).status_code == 200
    _, usage_key = create_key(client, key, name="usage", scopes=["usage:read"])
    assert client.get("/user/balance", headers=bearer(usage_key)).status_code == 200
