"""/admin/blocked-ips: the exact list of IP blocks, manual blocks with a TTL, unblocking; each a security event."""

from datetime import UTC, datetime, timedelta

from tests.helpers import ADMIN, assert_error, bearer, create_user

ATTACKER = {"REMOTE_ADDR": "203.0.113.9"}
WRONG_KEY = bearer("gw_live_" + "w" * 43)


def events(sql, event_type):
    return sql("SELECT host(ip) AS ip, details FROM security_events WHERE type = %s ORDER BY id", (event_type,))


def test_a_manual_block_refuses_the_ip_is_listed_and_is_a_security_event(client, sql, redis_client):
    admin, admin_key = create_user(client, role="admin")
    _, key = create_user(client)
    body = {"ip": "203.0.113.9", "ttl_seconds": 600, "reason": "scraping"}
    response = client.post("/admin/blocked-ips", json=body, headers=bearer(admin_key))
    assert response.status_code == 201, response.get_json()
    block = response.get_json()
    assert (block["address"], block["reason"], block["actor"]) == ("203.0.113.9", "scraping", f"admin:{admin['id']}")
    lasts = datetime.fromisoformat(block["expires_at"]) - datetime.fromisoformat(block["since"])
    assert lasts == timedelta(seconds=600)
    assert 590 < redis_client.ttl("gw:ipblock:203.0.113.9") <= 600
    assert_error(client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER), 429, "ip_blocked")
    assert client.get("/admin/blocked-ips", headers=ADMIN).get_json() == {"blocks": [block]}
    assert events(sql, "ip_blocked") == [
        {
            "ip": "203.0.113.9",
            "details": {"reason": "scraping", "block_seconds": 600, "actor": f"admin:{admin['id']}"},
        }
    ]


def test_unblock_lifts_the_block_at_once_and_a_second_unblock_is_404(client, sql, redis_client):
    _, key = create_user(client)
    client.post("/admin/blocked-ips", json={"ip": "2001:DB8::0:1", "ttl_seconds": 60, "reason": "x"}, headers=ADMIN)
    ipv6 = {"REMOTE_ADDR": "2001:db8::1"}
    assert_error(client.get("/user/balance", headers=bearer(key), environ_base=ipv6), 429, "ip_blocked")
    response = client.delete("/admin/blocked-ips/2001:db8::1", headers=ADMIN)
    assert response.status_code == 204
    assert client.get("/user/balance", headers=bearer(key), environ_base=ipv6).status_code == 200
    assert client.get("/admin/blocked-ips", headers=ADMIN).get_json() == {"blocks": []}
    assert redis_client.exists("gw:ipblock:2001:db8::1") == 0
    assert events(sql, "ip_unblocked") == [
        {"ip": "2001:db8::1", "details": {"actor": "admin:bootstrap", "reason": "x"}}
    ]
    assert_error(client.delete("/admin/blocked-ips/2001:db8::1", headers=ADMIN), 404, "ip_not_blocked")


def brute_force(make_app):
    """An app blocking after 3 failures for 900 s, a user's key, and the attacker blocked."""
    app = make_app(AUTH_FAILURE_LIMIT="3 per 5 minutes", AUTH_BLOCK_SECONDS=900)
    client = app.test_client()
    _, key = create_user(client)
    for _ in range(3):
        client.get("/user/balance", headers=WRONG_KEY, environ_base=ATTACKER)
    assert_error(client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER), 429, "ip_blocked")
    return client, key


def test_an_automatic_block_is_listed_with_its_reason_and_expiry(make_app):
    client, _ = brute_force(make_app)
    [block] = client.get("/admin/blocked-ips", headers=ADMIN).get_json()["blocks"]
    assert (block["address"], block["reason"], block["actor"]) == ("203.0.113.9", "repeated_auth_failures", "system")
    expires_in = datetime.fromisoformat(block["expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=890) < expires_in <= timedelta(seconds=900)


def test_unblocking_an_automatic_block_also_restarts_its_failure_window(make_app):
    client, key = brute_force(make_app)
    assert client.delete("/admin/blocked-ips/203.0.113.9", headers=ADMIN).status_code == 204
    assert client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER).status_code == 200
    assert_error(client.get("/user/balance", headers=WRONG_KEY, environ_base=ATTACKER), 401, "invalid_api_key")
    assert client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER).status_code == 200


def test_expired_blocks_are_not_listed(client, sql):
    sql(
        "INSERT INTO ip_blocks (address, reason, actor, since, expires_at)"
        " VALUES ('192.0.2.1', 'old', 'system', now() - interval '2 hours', now() - interval '1 hour')"
    )
    assert client.get("/admin/blocked-ips", headers=ADMIN).get_json() == {"blocks": []}
    assert_error(client.delete("/admin/blocked-ips/192.0.2.1", headers=ADMIN), 404, "ip_not_blocked")


def test_invalid_addresses_are_400_and_bad_bodies_422(client):
    for ip in ("not-an-ip", "10.0.0.0/8", "300.1.1.1", "fe80::1%eth0"):
        response = client.post("/admin/blocked-ips", json={"ip": ip, "ttl_seconds": 60, "reason": "x"}, headers=ADMIN)
        assert_error(response, 400, "invalid_ip")
    assert_error(client.delete("/admin/blocked-ips/not-an-ip", headers=ADMIN), 400, "invalid_ip")
    for body in (
        {"ip": "192.0.2.1", "ttl_seconds": 59, "reason": "x"},
        {"ip": "192.0.2.1", "ttl_seconds": 31 * 86400, "reason": "x"},
        {"ip": "192.0.2.1", "ttl_seconds": 60, "reason": ""},
        {"ip": "192.0.2.1", "ttl_seconds": 60},
    ):
        assert_error(client.post("/admin/blocked-ips", json=body, headers=ADMIN), 422, "validation_error")


def test_an_admin_cannot_block_the_address_they_call_from(client):
    body = {"ip": "127.0.0.1", "ttl_seconds": 60, "reason": "oops"}
    assert_error(client.post("/admin/blocked-ips", json=body, headers=ADMIN), 409, "own_ip")


def test_non_admins_cannot_see_or_change_blocks(client):
    _, key = create_user(client)
    assert_error(client.get("/admin/blocked-ips"), 401, "unauthorized")
    assert_error(client.get("/admin/blocked-ips", headers=bearer(key)), 403, "forbidden")
    body = {"ip": "192.0.2.1", "ttl_seconds": 60, "reason": "x"}
    assert_error(client.post("/admin/blocked-ips", json=body, headers=bearer(key)), 403, "forbidden")


def restore(client):
    """Run the restore_ip_blocks job by hand; its counts."""
    run = client.post("/admin/jobs/restore_ip_blocks/run", headers=ADMIN).get_json()
    assert run["status"] == "success", run["error"]
    return {name: run["details"][name] for name in ("blocks_in_force", "restored")}


def test_blocks_lost_by_a_redis_flush_are_restored_with_the_time_they_have_left(client, sql, redis_client):
    _, key = create_user(client)
    body = {"ip": "203.0.113.9", "ttl_seconds": 600, "reason": "scraping"}
    assert client.post("/admin/blocked-ips", json=body, headers=ADMIN).status_code == 201
    sql("UPDATE ip_blocks SET expires_at = now() + interval '300 seconds'")  # as if set 5 minutes ago
    redis_client.flushdb()
    assert client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER).status_code == 200
    assert restore(client) == {"blocks_in_force": 1, "restored": 1}
    assert_error(client.get("/user/balance", headers=bearer(key), environ_base=ATTACKER), 429, "ip_blocked")
    assert 290 < redis_client.ttl("gw:ipblock:203.0.113.9") <= 300
    assert restore(client) == {"blocks_in_force": 1, "restored": 0}  # a key still there is left alone


def test_unblocked_and_expired_ips_are_not_restored(client, sql, redis_client):
    for ip in ("203.0.113.9", "2001:db8::1"):
        client.post("/admin/blocked-ips", json={"ip": ip, "ttl_seconds": 600, "reason": "x"}, headers=ADMIN)
    assert client.delete("/admin/blocked-ips/2001:db8::1", headers=ADMIN).status_code == 204
    sql(
        "INSERT INTO ip_blocks (address, reason, actor, since, expires_at)"
        " VALUES ('192.0.2.1', 'old', 'system', now() - interval '2 hours', now() - interval '1 hour')"
    )
    redis_client.flushdb()
    assert restore(client) == {"blocks_in_force": 1, "restored": 1}
    assert redis_client.exists("gw:ipblock:203.0.113.9") == 1
    assert redis_client.exists("gw:ipblock:2001:db8::1", "gw:ipblock:192.0.2.1") == 0


def test_restore_with_no_blocks_does_nothing(client):
    assert restore(client) == {"blocks_in_force": 0, "restored": 0}
