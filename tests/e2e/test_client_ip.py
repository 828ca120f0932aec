"""The client address behind a platform router: gunicorn with a real forwarding proxy in front.

The proxy appends each client's socket address to X-Forwarded-For as Heroku's router does;
clients are told apart by the loopback address their socket is bound to. With
TRUSTED_PROXY_COUNT=1 every IP decision sees that client (and with two proxies, 2); a client's own
X-Forwarded-For never picks its address; with the default 0 every client is the proxy (the socket
address).
"""

import pytest

from tests.conftest import ADMIN_API_KEY
from tests.e2e.forwarding_proxy import ForwardingProxy

ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
BAD_KEY = {"Authorization": "Bearer gw_live_not_a_real_key_000000000000000000"}
AUTH_FAILURES_BEFORE_BLOCK = 20  # AUTH_FAILURE_LIMIT's default, "20 per 5 minutes"
CLIENT_A, CLIENT_B, CLIENT_C, OPERATOR = "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.4"


@pytest.fixture
def behind_proxy(gateway):
    """Start gunicorn with the given environment and ``hops`` forwarding proxies in front of it."""
    proxies = []

    def start(hops=1, **extra_env):
        port = gateway(workers=2, **extra_env).port
        for _ in range(hops):  # the last one started is the one clients reach
            proxies.append(ForwardingProxy(port))
            port = proxies[-1].port
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.stop()


def bearer(key):
    """Authorization headers for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def new_user_key(proxy):
    """A user created by the operator through the proxy; returns its first full key."""
    status, body = proxy.request(OPERATOR, "POST", "/admin/users", ADMIN, {"email": "ip@example.com"})
    assert status == 201, body
    return body["api_key"]


def fail_auth_until_blocked(proxy, client_ip, headers=None):
    """Send bad keys from ``client_ip`` until it is blocked; return how many were refused with 401."""
    refused = 0
    while True:
        status, body = proxy.request(client_ip, "GET", "/user/balance", {**BAD_KEY, **(headers or {})})
        if status == 429:
            assert body["error"]["code"] == "ip_blocked", body
            return refused
        assert status == 401, body
        refused += 1
        assert refused <= AUTH_FAILURES_BEFORE_BLOCK, "never blocked"


def test_only_the_client_sending_bad_keys_is_blocked_and_rows_record_the_real_client(behind_proxy, sql):
    proxy = behind_proxy(TRUSTED_PROXY_COUNT="1")
    key = new_user_key(proxy)

    assert fail_auth_until_blocked(proxy, CLIENT_A) == AUTH_FAILURES_BEFORE_BLOCK
    assert proxy.request(CLIENT_A, "GET", "/user/balance", bearer(key))[0] == 429  # even with a good key
    assert proxy.request(CLIENT_B, "GET", "/user/balance", bearer(key))[0] == 200
    assert proxy.request(OPERATOR, "GET", "/admin/plans", ADMIN)[0] == 200

    events = sql("SELECT host(ip) AS ip FROM security_events WHERE type = 'ip_blocked'")
    assert events == [{"ip": CLIENT_A}]
    failures = sql("SELECT DISTINCT host(ip) AS ip, actor FROM api_key_audit_logs WHERE action = 'auth_failure'")
    assert failures == [{"ip": CLIENT_A, "actor": f"ip:{CLIENT_A}"}]
    created = sql("SELECT DISTINCT host(ip) AS ip FROM api_key_audit_logs WHERE action = 'create'")
    assert created == [{"ip": OPERATOR}]


def test_a_keys_ip_allowlist_sees_the_real_client(behind_proxy, sql):
    proxy = behind_proxy(TRUSTED_PROXY_COUNT="1")
    key = new_user_key(proxy)
    status, body = proxy.request(
        CLIENT_B, "POST", "/user/api-keys", bearer(key), {"name": "office", "ip_allowlist": [f"{CLIENT_B}/32"]}
    )
    assert status == 201, body
    office_key = body["api_key"]

    assert proxy.request(CLIENT_B, "GET", "/user/balance", bearer(office_key))[0] == 200
    status, body = proxy.request(CLIENT_C, "GET", "/user/balance", bearer(office_key))
    assert (status, body["error"]["code"]) == (403, "ip_not_allowed")
    audit = sql("SELECT host(ip) AS ip FROM api_key_audit_logs WHERE action = 'ip_blocked'")
    assert audit == [{"ip": CLIENT_C}]


def test_the_per_ip_admin_limit_counts_each_client_separately(behind_proxy):
    proxy = behind_proxy(TRUSTED_PROXY_COUNT="1", ADMIN_RATE_LIMIT="3 per minute")
    statuses = [proxy.request(CLIENT_A, "GET", "/admin/plans", ADMIN)[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert proxy.request(CLIENT_B, "GET", "/admin/plans", ADMIN)[0] == 200


def test_a_clients_own_x_forwarded_for_cannot_pick_its_address(behind_proxy, sql):
    proxy = behind_proxy(TRUSTED_PROXY_COUNT="1")
    key = new_user_key(proxy)
    spoofed = {"X-Forwarded-For": "1.2.3.4"}
    status, body = proxy.request(
        CLIENT_B, "POST", "/user/api-keys", bearer(key), {"name": "vpn", "ip_allowlist": ["1.2.3.4/32"]}
    )
    assert status == 201, body

    assert proxy.request(CLIENT_B, "GET", "/user/balance", {**bearer(body["api_key"]), **spoofed})[0] == 403
    assert fail_auth_until_blocked(proxy, CLIENT_A, spoofed) == AUTH_FAILURES_BEFORE_BLOCK
    other_spoof = {**bearer(key), "X-Forwarded-For": "5.6.7.8, 9.9.9.9"}
    assert proxy.request(CLIENT_A, "GET", "/user/balance", other_spoof)[0] == 429  # a new header does not unblock
    assert sql("SELECT host(ip) AS ip FROM security_events WHERE type = 'ip_blocked'") == [{"ip": CLIENT_A}]
    spoofed_rows = sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE host(ip) IN ('1.2.3.4', '5.6.7.8')")
    assert spoofed_rows == [{"n": 0}]


def test_without_trusted_proxies_every_client_is_the_proxy(behind_proxy, sql):
    proxy = behind_proxy()  # TRUSTED_PROXY_COUNT unset: the socket address, the proxy's
    key = new_user_key(proxy)

    assert fail_auth_until_blocked(proxy, CLIENT_A) == AUTH_FAILURES_BEFORE_BLOCK
    assert proxy.request(CLIENT_B, "GET", "/user/balance", bearer(key))[0] == 429
    assert sql("SELECT host(ip) AS ip FROM security_events WHERE type = 'ip_blocked'") == [{"ip": "127.0.0.1"}]


def test_two_hops_with_a_count_of_two_see_the_client_the_outer_proxy_saw(behind_proxy, sql):
    proxy = behind_proxy(hops=2, TRUSTED_PROXY_COUNT="2")
    key = new_user_key(proxy)

    assert fail_auth_until_blocked(proxy, CLIENT_A, {"X-Forwarded-For": "1.2.3.4"}) == AUTH_FAILURES_BEFORE_BLOCK
    assert proxy.request(CLIENT_B, "GET", "/user/balance", bearer(key))[0] == 200
    assert sql("SELECT host(ip) AS ip FROM security_events WHERE type = 'ip_blocked'") == [{"ip": CLIENT_A}]


def test_an_admin_block_holds_for_every_spelling_of_an_ipv6_client(behind_proxy, sql):
    # Two trusted hops with one proxy started: the X-Forwarded-For a client sends stands for the outer proxy's.
    proxy = behind_proxy(TRUSTED_PROXY_COUNT="2")
    key = new_user_key(proxy)
    block = {"ip": "2001:db8::1", "ttl_seconds": 600, "reason": "abuse"}
    assert proxy.request(OPERATOR, "POST", "/admin/blocked-ips", ADMIN, block)[0] == 201
    for spelling in ("2001:DB8::1", "2001:db8:0:0::1", "2001:0db8::0001"):
        status, body = proxy.request(CLIENT_A, "GET", "/user/balance", {**bearer(key), "X-Forwarded-For": spelling})
        assert (status, body["error"]["code"]) == (429, "ip_blocked"), spelling
    assert proxy.request(CLIENT_A, "GET", "/user/balance", {**bearer(key), "X-Forwarded-For": "2001:db8::2"})[0] == 200
    assert sql("SELECT host(address) AS ip FROM ip_blocks") == [{"ip": "2001:db8::1"}]
