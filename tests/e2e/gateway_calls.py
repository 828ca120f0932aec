"""Calls to a gateway running as its own process, over HTTP: the bootstrap admin's headers, a user
made with credits, one chat completion (plain or streamed), a per-minute limit set at the start of a
fresh window; and the user's books as the database holds them afterwards."""

import time

import requests

from tests.conftest import ADMIN_API_KEY

ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
MODEL = "openai/gpt-4o-mini"


def create_user(base, credits, plan="team"):
    """Create a user with ``credits`` on ``plan`` at the gateway ``base``; (user id, its key's headers, the key)."""
    response = requests.post(
        f"{base}/admin/users",
        json={"email": f"{credits}-{plan}@example.com", "credits": credits, "plan": plan},
        headers=ADMIN,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['api_key']}"}, body["api_key"]


def complete(base, headers, stream=False, content="hello there", max_tokens=16):
    """POST one chat completion; (status, the JSON body, or a 200 stream's ``data:`` lines)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    response = requests.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=30, stream=stream)
    if stream and response.status_code == 200:
        events = [line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
        return response.status_code, events
    return response.status_code, response.json()


def wait_for_fresh_minute_window():
    """Fixed windows reset on the minute: keep a burst from straddling two windows."""
    second = time.time() % 60
    if second > 45:
        time.sleep(60 - second + 0.5)


def limit_per_minute_in_a_fresh_window(base_url, user_id, limit):
    """Set the user's requests_per_minute through /admin/limit, then wait for a window to start
    far enough from its end for a burst to fit in it."""
    limited = requests.post(
        f"{base_url}/admin/limit",
        json={"user_id": user_id, "rate_limits": {"requests_per_minute": limit}},
        headers=ADMIN,
        timeout=10,
    )
    assert limited.status_code == 200, limited.text
    wait_for_fresh_minute_window()


def books(sql, user_id):
    """The user's credits and holds, its usage rows' summed cost and upstream cost, its ledger's usage debits."""
    [row] = sql(
        "SELECT u.credits, u.reserved_credits,"
        " (SELECT coalesce(sum(cost), 0) FROM usage_records WHERE user_id = u.id) AS usage,"
        " (SELECT coalesce(sum(upstream_cost), 0) FROM usage_records WHERE user_id = u.id) AS upstream,"
        " (SELECT coalesce(-sum(amount), 0) FROM credit_transactions WHERE user_id = u.id AND kind = 'usage') AS debits"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )
    return row
