"""Exact rate limiting across gunicorn workers sharing one Redis."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.gateway_calls import ADMIN, complete, create_user, limit_per_minute_in_a_fresh_window
from tests.helpers.limits import WINDOW_HEADERS


@pytest.mark.slow  # may wait up to 15 s for a fresh minute window
def test_limit_of_20_per_minute_admits_exactly_20_of_100_concurrent(gateway, sql):
    server = gateway(workers=4)
    user_id, headers, _ = create_user(server.url, "10.00", plan="enterprise")
    limit_per_minute_in_a_fresh_window(server.url, user_id, 20)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def send(_):
        return requests.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(100) as pool:
        responses = list(pool.map(send, range(100)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 20 and statuses.count(429) == 80, statuses
    for response in responses:
        for name in WINDOW_HEADERS:
            assert name in response.headers, (response.status_code, name)
        if response.status_code == 429:
            assert response.json()["error"]["details"] == {"limit": 20, "window": "requests_per_minute"}
            assert int(response.headers["Retry-After"]) >= 1
    assert sql("SELECT count(*) AS n FROM usage_records WHERE user_id = %s", (user_id,))[0]["n"] == 20


def test_admin_limit_change_applies_on_next_request_in_every_worker(gateway):
    server = gateway(workers=4)
    user_id, headers, key = create_user(server.url, "10.00", plan="team")
    assert complete(server.url, headers)[0] == 200
    requests.post(
        f"{server.url}/admin/limit",
        json={"api_key": key, "rate_limits": {"requests_per_day": 0}},
        headers=ADMIN,
        timeout=10,
    ).raise_for_status()
    assert {complete(server.url, headers)[0] for _ in range(12)} == {429}
    requests.delete(f"{server.url}/admin/limit/{user_id}", headers=ADMIN, timeout=10).raise_for_status()
    assert {complete(server.url, headers)[0] for _ in range(12)} == {200}
