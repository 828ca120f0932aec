"""A full API key appears in exactly one place: the response that reveals it, once."""

import json

from tests.conftest import ADMIN_API_KEY
from tests.helpers import bearer


def database_text(sql):
    """Every row of every table in the public schema, as text."""
    tables = sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    assert {"users", "api_keys", "api_key_audit_logs", "credit_transactions"} <= {t["table_name"] for t in tables}
    return "\n".join(row["t"] for table in tables for row in sql(f'SELECT t::text AS t FROM "{table["table_name"]}" t'))


def redis_text(redis_client):
    """Every Redis key and value (rate-limit counters, blocks, key IP sets), as text."""
    parts = []
    for name in redis_client.scan_iter():
        kind = redis_client.type(name)
        value = {
            "string": redis_client.get,
            "set": redis_client.smembers,
            "hash": redis_client.hgetall,
            "list": lambda n: redis_client.lrange(n, 0, -1),
            "zset": lambda n: redis_client.zrange(n, 0, -1),
        }.get(kind, lambda n: "")(name)
        parts.append(f"{name} {value}")
    return "\n".join(parts)


def test_full_keys_never_appear_in_rows_logs_or_other_responses(make_app, capsys, sql, redis_client):
    app = make_app(LOG_FORMAT="json", LOG_LEVEL="debug", AUTH_FAILURE_LIMIT="1000 per 5 minutes")
    client = app.test_client()
    issued = []  # every full key the gateway revealed
    seen = []  # every other response: status line, headers and body

    def call(method, path, key=None, expect=200, **kwargs):
        kwargs.setdefault("headers", bearer(key) if key else {})
        response = client.open(path, method=method, **kwargs)
        assert response.status_code == expect, (method, path, response.get_json())
        if expect == 201 and "api_key" in response.get_json():
            issued.append(response.get_json()["api_key"])  # the one-time reveal
        else:
            seen.append(f"{response.status} {response.headers} {response.get_data(as_text=True)}")
        return response

    admin = ADMIN_API_KEY
    created = call("POST", "/admin/users", admin, 201, json={"email": "a@example.com", "credits": "3"})
    user_id, key = created.get_json()["user"]["id"], issued[-1]
    call("POST", "/admin/users", admin, 201, json={"email": "root@example.com", "role": "admin"})
    admin_key = issued[-1]
    call("POST", "/user/api-keys", key, 201, json={"name": "office", "ip_allowlist": ["10.0.0.0/8"]})
    office_key = issued[-1]
    old = call("POST", "/user/api-keys", key, 201, json={"name": "rotate-me", "scopes": ["chat:write"]})
    old_id, old_key = old.get_json()["key"]["id"], issued[-1]
    middle = call("POST", f"/user/api-keys/{old_id}/rotate", key, 201, json={"grace_seconds": 300})
    middle_id, middle_key = middle.get_json()["key"]["id"], issued[-1]
    call("POST", f"/user/api-keys/{middle_id}/rotate", key, 201, json={})
    newest_key = issued[-1]

    call("GET", "/user/balance", key)
    call("GET", "/user/balance", old_key, 403)  # in its grace period, but lacks usage:read
    call("GET", "/user/balance", middle_key, 401)  # rotated without grace
    call("GET", "/user/api-keys", key)
    call("PATCH", f"/user/api-keys/{middle_id}", key, 409, json={"name": "renamed"})
    call("POST", "/user/api-keys", key, 409, json={"name": "office"})
    call("POST", "/user/api-keys", key, 422, json={"name": "bad", "scopes": ["everything"]})
    call("GET", "/user/balance", office_key, 403)  # outside its allowlist
    call("GET", "/user/balance", office_key, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    call("GET", "/user/balance", key[:-1] + ("A" if key[-1] != "A" else "B"), 401)
    call("GET", "/user/balance", key + "x", 401)
    call("GET", "/user/balance", key[len("gw_live_") :], 401)
    call("GET", "/user/balance", expect=401, headers={"Authorization": f"Token {key}"})
    call("GET", "/v1/models", middle_key, 401)
    call("POST", "/v1/chat/completions", newest_key, 422, json={"messages": "not a list"})
    call("GET", "/user/api-keys/audit-logs?limit=1000", key)
    call("GET", "/admin/users", key, 403)
    call("GET", "/admin/users", admin_key)
    call("GET", f"/admin/users/{user_id}", admin)
    call("POST", f"/admin/users/{user_id}/credits", admin_key, json={"amount": "-1", "reason": "test"})
    call("GET", "/admin/audit-logs?limit=1000", admin_key)
    call("DELETE", f"/user/api-keys/{old_id}", key)
    call("DELETE", f"/user/api-keys/{old_id}", key, 409)
    call("GET", "/user/balance", old_key, 401)

    logs = capsys.readouterr()
    log_lines = [json.loads(line) for line in logs.out.splitlines() if line.startswith("{")]
    # The capture really holds what we scan: access lines and failure lines with key prefixes.
    assert sum(line["message"] == "request" for line in log_lines) >= len(seen) + len(issued)
    assert any(line.get("key_prefix") == key[:11] for line in log_lines)
    haystacks = {
        "database": database_text(sql),
        "logs": logs.out + logs.err,
        "redis": redis_text(redis_client),
        "responses": "\n".join(seen),
    }
    assert json.dumps(f"{key[:11]}…{key[-4:]}")[1:-1] in haystacks["responses"]  # masked keys are shown
    assert len(issued) == 6
    for where, text in haystacks.items():
        assert ADMIN_API_KEY not in text, where
        for full_key in issued:
            assert full_key not in text, (where, full_key[:11])
            assert full_key[len("gw_live_") :] not in text, (where, full_key[:11])
