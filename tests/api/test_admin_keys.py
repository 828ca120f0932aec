"""/admin/users/<id>/api-keys: support lists, changes, revokes and rotates any user's keys, audited as the admin."""

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user


def audit_rows(sql, key_id):
    """The key's lifecycle audit rows (not its failed authentications), oldest first."""
    return sql(
        "SELECT action, actor FROM api_key_audit_logs WHERE api_key_id = %s AND action <> 'auth_failure' ORDER BY id",
        (key_id,),
    )


def test_admin_lists_a_users_keys_masked_and_paged(client):
    user, key = create_user(client)
    create_key(client, key, name="second")
    create_key(client, key, name="third")
    create_user(client)  # another user's keys never show up
    first = client.get(f"/admin/users/{user['id']}/api-keys?limit=2", headers=ADMIN)
    assert first.status_code == 200
    page = first.get_json()
    assert [k["name"] for k in page["keys"]] == ["third", "second"] and page["next_cursor"]
    rest = client.get(f"/admin/users/{user['id']}/api-keys?limit=2&cursor={page['next_cursor']}", headers=ADMIN)
    assert [k["name"] for k in rest.get_json()["keys"]] == ["default"]
    assert rest.get_json()["next_cursor"] is None
    for shown in page["keys"] + rest.get_json()["keys"]:
        assert "…" in shown["masked_key"] and key not in str(shown)
    everything = client.get(f"/admin/users/{user['id']}/api-keys", headers=ADMIN).get_json()
    assert len(everything["keys"]) == 3 and everything["next_cursor"] is None


def test_listing_keys_of_a_missing_user_is_404_and_a_bad_cursor_400(client):
    user, _ = create_user(client)
    assert_error(client.get("/admin/users/999999/api-keys", headers=ADMIN), 404, "user_not_found")
    assert_error(client.get(f"/admin/users/{user['id']}/api-keys?cursor=nope", headers=ADMIN), 400, "invalid_cursor")
    assert_error(client.get(f"/admin/users/{user['id']}/api-keys?limit=0", headers=ADMIN), 422, "validation_error")


def test_admin_patch_changes_the_key_and_is_audited_with_the_admin_as_actor(client, sql):
    admin, admin_key = create_user(client, role="admin")
    user, key = create_user(client)
    extra, _ = create_key(client, key, name="ci", scopes=["models:read"])
    response = client.patch(
        f"/admin/users/{user['id']}/api-keys/{extra['id']}",
        json={"name": "ci-renamed", "ip_allowlist": ["10.1.2.3/8"], "scopes": ["chat:write"]},
        headers=bearer(admin_key),
    )
    assert response.status_code == 200, response.get_json()
    changed = response.get_json()
    assert (changed["name"], changed["ip_allowlist"], changed["scopes"]) == (
        "ci-renamed",
        ["10.0.0.0/8"],
        ["chat:write"],
    )
    assert audit_rows(sql, extra["id"])[-1] == {"action": "update", "actor": f"admin:{admin['id']}"}
    # The user sees the admin's change in their own key audit log.
    logs = client.get(f"/user/api-keys/audit-logs?key_id={extra['id']}", headers=bearer(key)).get_json()["logs"]
    assert logs[0]["action"] == "update" and logs[0]["actor"] == f"admin:{admin['id']}"
    invalid = client.patch(f"/admin/users/{user['id']}/api-keys/{extra['id']}", json={"scopes": ["x"]}, headers=ADMIN)
    assert_error(invalid, 422, "validation_error")


def test_a_key_of_another_user_is_404_on_every_route(client):
    user, _ = create_user(client)
    _, other_key = create_user(client)
    other, _ = create_key(client, other_key, name="theirs")
    base = f"/admin/users/{user['id']}/api-keys/{other['id']}"
    assert_error(client.patch(base, json={"name": "x"}, headers=ADMIN), 404, "api_key_not_found")
    assert_error(client.delete(base, headers=ADMIN), 404, "api_key_not_found")
    assert_error(client.post(f"{base}/rotate", json={}, headers=ADMIN), 404, "api_key_not_found")


def test_admin_revokes_a_leaked_key_at_once_and_needs_force_for_the_last_one(client, sql):
    user, key = create_user(client)
    leaked, leaked_key = create_key(client, key, name="leaked")
    response = client.delete(f"/admin/users/{user['id']}/api-keys/{leaked['id']}", headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["status"] == "revoked"
    assert_error(client.get("/user/balance", headers=bearer(leaked_key)), 401, "invalid_api_key")
    assert audit_rows(sql, leaked["id"])[-1] == {"action": "delete", "actor": "admin:bootstrap"}

    [default] = [
        k for k in client.get("/user/api-keys", headers=bearer(key)).get_json()["keys"] if k["status"] == "active"
    ]
    last = f"/admin/users/{user['id']}/api-keys/{default['id']}"
    assert_error(client.delete(last, headers=ADMIN), 409, "last_active_key")
    assert client.delete(f"{last}?force=true", headers=ADMIN).status_code == 200
    assert_error(client.get("/user/balance", headers=bearer(key)), 401, "invalid_api_key")


def test_admin_rotation_reveals_the_new_key_once_and_stops_the_old_one(client, sql):
    user, key = create_user(client)
    other, other_key = create_key(client, key, name="rotate-me")
    response = client.post(f"/admin/users/{user['id']}/api-keys/{other['id']}/rotate", json={}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["api_key"].startswith("gw_live_") and body["key"]["name"] == "rotate-me"
    assert client.get("/user/balance", headers=bearer(body["api_key"])).status_code == 200
    assert client.get("/user/balance", headers=bearer(other_key)).status_code == 401
    assert audit_rows(sql, other["id"])[-1] == {"action": "rotate", "actor": "admin:bootstrap"}
    listed = client.get(f"/admin/users/{user['id']}/api-keys", headers=ADMIN).get_json()["keys"]
    assert body["api_key"] not in str(listed)
    bad = client.post(
        f"/admin/users/{user['id']}/api-keys/{other['id']}/rotate", json={"grace_seconds": -1}, headers=ADMIN
    )
    assert_error(bad, 422, "validation_error")
