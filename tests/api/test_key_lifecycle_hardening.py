"""Key lifecycle limits a key holder cannot talk their way around: a key in its rotation grace
period is only a credential, no key grants a scope it lacks, and expiry is final."""

from tests.helpers import assert_error, bearer, create_key, create_user
from tests.helpers.upstream import UPSTREAM, completion, mock_model_lists

# What a key scoped to keys:manage and usage:read lacks of "every scope" ([]).
LACKING_OF_ALL = [
    "admin:read",
    "admin:write",
    "chat:write",
    "embeddings:write",
    "messages:write",
    "models:read",
    "org:manage",
    "responses:write",
]


def rotate_with_grace(client, key, key_id, seconds=3600):
    response = client.post(f"/user/api-keys/{key_id}/rotate", json={"grace_seconds": seconds}, headers=bearer(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"], response.get_json()["api_key"]


def test_key_in_grace_period_is_a_credential_but_never_manages_keys(client, sql, requests_mock):
    mock_model_lists(requests_mock)
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion())
    _, key = create_user(client, credits="1.00", plan="team")
    old, old_key = create_key(client, key, name="svc")
    new, new_key = rotate_with_grace(client, old_key, old["id"])
    before = sql("SELECT id, status, name, ip_allowlist::text[] AS ips FROM api_keys ORDER BY id")

    old_auth = bearer(old_key)
    refused = [
        client.get("/user/api-keys", headers=old_auth),
        client.post("/user/api-keys", json={"name": "sneaky"}, headers=old_auth),
        client.patch(f"/user/api-keys/{new['id']}", json={"ip_allowlist": ["203.0.113.7"]}, headers=old_auth),
        client.delete(f"/user/api-keys/{new['id']}?force=true", headers=old_auth),
        client.post(f"/user/api-keys/{new['id']}/rotate", json={}, headers=old_auth),
        client.get("/user/api-keys/audit-logs", headers=old_auth),
    ]
    for response in refused:
        error = assert_error(response, 403, "key_in_grace_period")
        assert error["details"]["grace_until"]
    assert sql("SELECT id, status, name, ip_allowlist::text[] AS ips FROM api_keys ORDER BY id") == before

    # As a credential it still does what it did.
    assert client.get("/user/balance", headers=old_auth).status_code == 200
    assert client.get("/user/monitor", headers=old_auth).status_code == 200
    assert client.get("/v1/models", headers=old_auth).status_code == 200
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert client.post("/v1/chat/completions", json=chat, headers=old_auth).status_code == 200
    # The replacement manages keys as usual.
    assert client.get("/user/api-keys", headers=bearer(new_key)).status_code == 200


def test_scoped_key_cannot_grant_itself_or_another_key_scopes_it_lacks(client, sql):
    _, key = create_user(client)
    manager, manager_key = create_key(client, key, name="manager", scopes=["keys:manage", "usage:read"])
    other, _ = create_key(client, key, name="other", scopes=["usage:read"])
    auth = bearer(manager_key)

    for target in (manager, other):
        path = f"/user/api-keys/{target['id']}"
        error = assert_error(client.patch(path, json={"scopes": []}, headers=auth), 403, "scope_escalation")
        assert error["details"]["lacking"] == LACKING_OF_ALL
        error = assert_error(client.patch(path, json={"scopes": ["chat:write"]}, headers=auth), 403, "scope_escalation")
        assert error["details"]["lacking"] == ["chat:write"]
    body = {"name": "all", "scopes": []}
    assert_error(client.post("/user/api-keys", json=body, headers=auth), 403, "scope_escalation")
    body = {"name": "chat", "scopes": ["chat:write", "usage:read"]}
    assert_error(client.post("/user/api-keys", json=body, headers=auth), 403, "scope_escalation")
    # Rotating a more powerful key would hand the caller that power in the replacement.
    assert_error(
        client.post(f"/user/api-keys/{key_id(sql, 'default')}/rotate", json={}, headers=auth), 403, "scope_escalation"
    )
    assert sql("SELECT name, scopes FROM api_keys ORDER BY id") == [
        {"name": "default", "scopes": []},
        {"name": "manager", "scopes": ["keys:manage", "usage:read"]},
        {"name": "other", "scopes": ["usage:read"]},
    ]

    # Within its own scopes it grants freely; a key with no scopes grants anything.
    narrowed = client.patch(f"/user/api-keys/{other['id']}", json={"scopes": ["keys:manage"]}, headers=auth)
    assert narrowed.status_code == 200 and narrowed.get_json()["scopes"] == ["keys:manage"]
    created = client.post("/user/api-keys", json={"name": "reader", "scopes": ["usage:read"]}, headers=auth)
    assert created.status_code == 201
    # Without "scopes", a scoped key's new key gets its creator's scopes, not every scope.
    inherited = client.post("/user/api-keys", json={"name": "like-me"}, headers=auth)
    assert inherited.status_code == 201 and inherited.get_json()["key"]["scopes"] == ["keys:manage", "usage:read"]
    unscoped = client.post("/user/api-keys", json={"name": "like-default"}, headers=bearer(key))
    assert unscoped.status_code == 201 and unscoped.get_json()["key"]["scopes"] == []
    widened = client.patch(f"/user/api-keys/{manager['id']}", json={"scopes": []}, headers=bearer(key))
    assert widened.status_code == 200 and widened.get_json()["scopes"] == []


def key_id(sql, name):
    return sql("SELECT id FROM api_keys WHERE name = %s", (name,))[0]["id"]


def test_expired_key_stays_expired(client, sql):
    _, key = create_user(client)
    old, old_key = create_key(client, key, name="old", expires_in_days=1)
    sql("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", (old["id"],))
    path = f"/user/api-keys/{old['id']}"
    for change in ({"expires_in_days": None}, {"expires_in_days": 30}, {"name": "renamed", "expires_in_days": None}):
        assert_error(client.patch(path, json=change, headers=bearer(key)), 409, "api_key_inactive")
    [row] = sql("SELECT name, expires_at < now() AS expired FROM api_keys WHERE id = %s", (old["id"],))
    assert row == {"name": "old", "expired": True}
    error = assert_error(client.get("/user/balance", headers=bearer(old_key)), 401, "invalid_api_key")
    assert error["details"] == {"reason": "expired"}
    # A key that has not expired yet may still have its expiry changed.
    live, _ = create_key(client, key, name="live", expires_in_days=1)
    response = client.patch(f"/user/api-keys/{live['id']}", json={"expires_in_days": None}, headers=bearer(key))
    assert response.status_code == 200 and response.get_json()["expires_at"] is None


def test_admin_key_in_grace_period_cannot_use_admin(client, sql):
    _, admin_key = create_user(client, role="admin")
    old, old_key = create_key(client, admin_key, name="ops")
    rotate_with_grace(client, old_key, old["id"])
    error = assert_error(client.get("/admin/users", headers=bearer(old_key)), 403, "key_in_grace_period")
    assert error["details"]["grace_until"]
    [audit] = sql(
        "SELECT details FROM api_key_audit_logs WHERE action = 'auth_failure' AND api_key_id = %s", (old["id"],)
    )
    assert audit["details"]["reason"] == "key_in_grace_period"
    assert client.get("/admin/users", headers=bearer(admin_key)).status_code == 200


def test_scoped_key_cannot_loosen_a_more_powerful_key(client, sql):
    _, key = create_user(client)
    _, manager_key = create_key(client, key, name="manager", scopes=["keys:manage", "usage:read"])
    powerful = key_id(sql, "default")
    auth = bearer(manager_key)
    for change in ({"ip_allowlist": []}, {"expires_in_days": None}, {"name": "renamed"}):
        error = assert_error(
            client.patch(f"/user/api-keys/{powerful}", json=change, headers=auth), 403, "scope_escalation"
        )
        assert error["details"]["lacking"] == LACKING_OF_ALL
    assert sql("SELECT name FROM api_keys WHERE id = %s", (powerful,)) == [{"name": "default"}]
