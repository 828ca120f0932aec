"""Every /admin/* route, present and future, needs the bootstrap key or an admin user's key."""

from tests.helpers import ADMIN, assert_error, bearer, create_user, example_path


def admin_requests(app):
    """(method, path) for every method of every /admin rule in the app's URL map."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")]
    return [(method, example_path(rule)) for rule in rules for method in sorted(rule.methods)]


def test_every_admin_route_rejects_missing_bad_and_non_admin_keys(make_app):
    # Dozens of deliberate failures from one IP: lift the brute-force block for this test.
    app = make_app(AUTH_FAILURE_LIMIT="10000 per 5 minutes")
    client = app.test_client()
    _, user_key = create_user(client)
    requests = admin_requests(app)
    paths = {path for _, path in requests}
    assert {"/admin/users", "/admin/users/1", "/admin/users/1/credits", "/admin/audit-logs"} <= paths
    cases = [
        ({}, 401, "unauthorized"),
        (bearer("gw_live_" + "q" * 43), 401, "invalid_api_key"),
        (bearer("wrong-bootstrap-key"), 401, "invalid_api_key"),
        (bearer(user_key), 403, "forbidden"),
    ]
    for method, path in requests:
        for headers, status, code in cases:
            response = client.open(path, method=method, headers=headers, json={})
            assert response.status_code == status, (method, path, headers)
            if method != "HEAD":
                assert response.get_json()["error"]["code"] == code, (method, path, headers)


def test_bootstrap_key_and_admin_user_keys_are_accepted(client, sql):
    admin, admin_key = create_user(client, role="admin")
    assert client.get("/admin/users", headers=ADMIN).status_code == 200
    assert client.get("/admin/users", headers=bearer(admin_key)).status_code == 200
    created = client.post("/admin/users", json={"email": "new@example.com"}, headers=bearer(admin_key))
    assert created.status_code == 201
    [row] = sql(
        "SELECT actor FROM api_key_audit_logs WHERE action = 'user_created' AND user_id = %s",
        (created.get_json()["user"]["id"],),
    )
    assert row["actor"] == f"admin:{admin['id']}"


def test_non_admin_attempt_is_audited_with_key_prefix(client, sql):
    user, key = create_user(client)
    assert_error(client.get("/admin/audit-logs", headers=bearer(key)), 403, "forbidden")
    [row] = sql("SELECT user_id, actor, details FROM api_key_audit_logs WHERE action = 'auth_failure'")
    assert row == {
        "user_id": user["id"],
        "actor": f"user:{user['id']}",
        "details": {"reason": "not_admin", "key_prefix": key[:11], "path": "/admin/audit-logs"},
    }


def test_demoted_or_suspended_admin_loses_access_at_once(client):
    admin, admin_key = create_user(client, role="admin")
    other, other_key = create_user(client, role="admin")
    client.patch(f"/admin/users/{admin['id']}", json={"role": "user"}, headers=ADMIN)
    assert_error(client.get("/admin/users", headers=bearer(admin_key)), 403, "forbidden")
    client.patch(f"/admin/users/{other['id']}", json={"status": "suspended"}, headers=ADMIN)
    assert_error(client.get("/admin/users", headers=bearer(other_key)), 401, "invalid_api_key")
