"""A running stream stops within 10 s of its user's suspension or its key's revocation, under
gunicorn, and is charged for what it delivered (issue 15 #7)."""

import json
import time
from decimal import Decimal

import pytest
import requests

from tests.e2e.gateway_calls import ADMIN, MODEL, create_user

CUT_WITHIN_SECONDS = 10


def open_stream(base, headers):
    """A completion of 200 one-word chunks, 100 ms apart (20 s), read as it arrives."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 200, "stream": True}
    response = requests.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=30, stream=True)
    assert response.status_code == 200
    return response, response.iter_lines(decode_unicode=True)


@pytest.mark.parametrize("ending", ["suspend_user", "revoke_key"])
def test_a_stream_stops_within_ten_seconds_of_its_key_ending(gateway, upstream, sql, ending):
    requests.post(f"{upstream.url}/_control", json={"chunk_delay_ms": 100}, timeout=5).raise_for_status()
    server = gateway(workers=2)
    user_id, headers, _ = create_user(server.url, "10.00")
    spare = requests.post(f"{server.url}/user/api-keys", json={"name": "spare"}, headers=headers, timeout=10).json()
    response, lines = open_stream(server.url, headers)
    assert next(line for line in lines if line.startswith("data: "))
    ended = time.monotonic()
    if ending == "suspend_user":
        change = requests.patch(
            f"{server.url}/admin/users/{user_id}", json={"status": "suspended"}, headers=ADMIN, timeout=10
        )
    else:  # the spare key revokes the streaming one
        [streaming] = sql("SELECT id FROM api_keys WHERE user_id = %s AND name <> 'spare'", (user_id,))
        spare_auth = {"Authorization": f"Bearer {spare['api_key']}"}
        change = requests.delete(f"{server.url}/user/api-keys/{streaming['id']}", headers=spare_auth, timeout=10)
    assert change.status_code == 200, change.text
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    cut_after = time.monotonic() - ended
    response.close()
    assert cut_after < CUT_WITHIN_SECONDS
    assert json.loads(events[-1])["error"]["code"] == "api_key_revoked"
    [usage] = sql("SELECT status, completion_tokens, cost FROM usage_records WHERE user_id = %s", (user_id,))
    assert usage["status"] == "incomplete" and 0 < usage["completion_tokens"] < 200
    [books] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))
    assert books == {"credits": Decimal("10.00") - usage["cost"], "reserved_credits": 0}
    assert sql("SELECT count(*) AS n FROM credit_holds WHERE user_id = %s", (user_id,)) == [{"n": 0}]
