"""Per-request credit holds, upstream's own cost beside ours, and streams cut when their key dies.

Issue 15: a stale-hold release freed a running stream's hold (the credit could be spent twice);
upstream's accounting was not kept; a stream outlived its key's revocation.
"""

import io
import json
from decimal import Decimal

import pytest

from ops_gateway.accounts.key_watch import OPEN_STREAMS
from tests.helpers import ADMIN, bearer, create_key, create_user
from tests.helpers.upstream import UPSTREAM, chat, chunk, completion, sse

PRICES = (Decimal("0.00000015"), Decimal("0.0000006"))  # gpt-4o-mini in the faked catalogue
STREAM_BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}


def cost_of(prompt, completion_tokens):
    return prompt * PRICES[0] + completion_tokens * PRICES[1]


def open_stream(client, key, upstream, usage):
    """A streamed completion whose first chunk was read and whose end was not."""
    events = sse(chunk("a"), chunk("b"), chunk("c"), chunk(usage=usage), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers={"Content-Type": "text/event-stream"})
    response = client.post(
        "/v1/chat/completions", json={**STREAM_BODY, "max_tokens": 50}, headers=bearer(key), buffered=False
    )
    chunks = iter(response.response)
    assert b"data: " in next(chunks)
    return response, chunks


def test_a_running_streams_hold_is_its_own_row_and_survives_the_stale_hold_job(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    response, chunks = open_stream(client, key, upstream, {"prompt_tokens": 5, "completion_tokens": 3})
    [hold] = sql("SELECT user_id, amount, expires_at > now() + interval '10 minutes' AS far FROM credit_holds")
    assert hold["user_id"] == user["id"] and hold["amount"] > 0 and hold["far"]
    # The old rule released every hold of a user whose newest hold was 30 minutes old.
    sql("UPDATE users SET reserved_at = now() - interval '2 hours' WHERE id = %s", (user["id"],))
    job = client.post("/admin/jobs/release_stale_holds/run", headers=ADMIN).get_json()
    assert job["details"]["holds_released"] == 0 and job["details"]["users_released"] == 0
    [row] = sql("SELECT reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert row["reserved_credits"] == hold["amount"]  # not spendable twice
    b"".join(chunks)
    response.close()
    assert sql("SELECT count(*) AS n FROM credit_holds") == [{"n": 0}]
    [books] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert books == {"credits": Decimal("1.00") - cost_of(5, 3), "reserved_credits": 0}


def test_the_job_releases_only_holds_past_their_expiry_and_unrowed_legacy_holds(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    live, live_chunks = open_stream(client, key, upstream, {"prompt_tokens": 1, "completion_tokens": 1})
    gone, gone_chunks = open_stream(client, key, upstream, {"prompt_tokens": 1, "completion_tokens": 1})
    holds = sql("SELECT id, amount FROM credit_holds ORDER BY id")
    sql("UPDATE credit_holds SET expires_at = now() - interval '1 second' WHERE id = %s", (holds[1]["id"],))
    [legacy] = sql(
        "INSERT INTO users (email, plan, credits, reserved_credits, reserved_at) VALUES"
        " ('legacy@example.com', 'trial', 5, 1, now() - interval '2 hours') RETURNING id"
    )
    job = client.post("/admin/jobs/release_stale_holds/run", headers=ADMIN).get_json()
    assert job["details"] == {**job["details"], "holds_released": 1, "users_released": 2}
    reserved = {r["id"]: r["reserved_credits"] for r in sql("SELECT id, reserved_credits FROM users")}
    assert reserved[user["id"]] == holds[0]["amount"] and reserved[legacy["id"]] == 0
    # The released request still settles its cost, and does not give its hold back twice.
    for response, chunks in ((gone, gone_chunks), (live, live_chunks)):
        b"".join(chunks)
        response.close()
    [books] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert books == {"credits": Decimal("1.00") - 2 * cost_of(1, 1), "reserved_credits": 0}


def test_a_refusal_after_the_hold_deletes_its_row(client, upstream, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    response = chat(client, key, model="nobody/unknown")
    assert response.status_code == 404
    assert sql("SELECT count(*) AS n FROM credit_holds") == [{"n": 0}]


def test_the_user_pays_upstreams_reported_cost_not_the_catalogue_price(client, requests_mock, upstream, sql):
    reported = {**completion(10, 20)["usage"], "cost": 0.0000195}  # the catalogue's price: 0.0000135
    requests_mock.post(f"{UPSTREAM}/chat/completions", json={**completion(10, 20), "usage": reported})
    user, key = create_user(client, credits="1.00", plan="team")
    response = chat(client, key)
    assert response.status_code == 200 and response.headers["X-Gateway-Cost"] == "0.0000195"
    assert requests_mock.request_history[-1].json()["usage"] == {"include": True}
    [row] = sql("SELECT cost, upstream_cost FROM usage_records WHERE user_id = %s", (user["id"],))
    assert row == {"cost": Decimal("0.0000195"), "upstream_cost": Decimal("0.0000195")}
    [books] = sql("SELECT credits FROM users WHERE id = %s", (user["id"],))
    assert books["credits"] == Decimal("1.00") - Decimal("0.0000195")
    billing = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["billing"]
    for period in ("today", "month"):
        assert billing[period]["upstream_reported_requests"] == 1
        assert Decimal(billing[period]["cost"]) == Decimal(billing[period]["upstream_cost"]) == Decimal("0.0000195")
        assert Decimal(billing[period]["drift"]) == 0


def test_the_operators_markup_multiplies_upstreams_cost_and_the_hold(make_app, requests_mock, upstream, sql):
    client = make_app(BILLING_MARKUP=Decimal("1.5")).test_client()
    reported = {**completion(10, 20)["usage"], "cost": 0.00002}
    requests_mock.post(f"{UPSTREAM}/chat/completions", json={**completion(10, 20), "usage": reported})
    user, key = create_user(client, credits="1.00", plan="team")
    assert chat(client, key).headers["X-Gateway-Cost"] == "0.00003"
    [row] = sql("SELECT cost, upstream_cost FROM usage_records WHERE user_id = %s", (user["id"],))
    assert row == {"cost": Decimal("0.00003"), "upstream_cost": Decimal("0.00002")}
    billing = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["billing"]
    assert Decimal(billing["today"]["drift"]) == Decimal("0.00001")  # the markup
    metrics = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert 'gateway_upstream_cost_drift_usd_total{higher="gateway"}' in metrics


def test_a_streams_reported_cost_is_kept_and_a_missing_or_bogus_one_is_null(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "cost": 0.0000025}
    response, chunks = open_stream(client, key, upstream, usage)
    b"".join(chunks)
    response.close()
    upstream.post(
        f"{UPSTREAM}/chat/completions", json={**completion(), "usage": {**completion()["usage"], "cost": "x"}}
    )
    assert chat(client, key).status_code == 200
    rows = sql("SELECT streamed, upstream_cost FROM usage_records WHERE user_id = %s ORDER BY id", (user["id"],))
    assert rows == [
        {"streamed": True, "upstream_cost": Decimal("0.0000025")},
        {"streamed": False, "upstream_cost": None},
    ]


@pytest.fixture
def instant_key_checks(monkeypatch):
    """Check open streams' keys on every chunk instead of every few seconds."""
    monkeypatch.setattr(OPEN_STREAMS, "check_seconds", 0)


class UpstreamBody(io.RawIOBase):
    """A streamed upstream body read part by part; a callable part runs when the reader gets to it."""

    def __init__(self, *parts):
        self.parts = list(parts)

    def readable(self):
        return True

    def readinto(self, buffer):
        while self.parts and callable(self.parts[0]):
            self.parts.pop(0)()
        if not self.parts:
            return 0
        part = self.parts.pop(0)
        buffer[: len(part)] = part
        return len(part)


def test_upstream_keep_alives_reach_the_client_and_a_revoked_keys_stream_is_cut_at_one(
    client, upstream, sql, instant_key_checks
):
    user, key = create_user(client, credits="1.00", plan="team")
    streaming, streaming_key = create_key(client, key, name="streaming")
    first = sse(chunk("a"))
    first = sse(chunk("a" + "." * (512 - len(first))))  # one whole read of the relay's reader
    thinking = b": OPENROUTER PROCESSING\n\n"  # what OpenRouter sends while a model thinks
    rest = sse(chunk("b"), chunk(usage={"prompt_tokens": 5}), "[DONE]").encode()
    upstream.post(f"{UPSTREAM}/chat/completions", body=UpstreamBody(first.encode(), thinking, thinking, rest))
    response = client.post("/v1/chat/completions", json=STREAM_BODY, headers=bearer(key), buffered=False)
    assert response.get_data(as_text=True).count(": processing\n\n") == 2 and b"[DONE]" in response.get_data()

    revoke = lambda: client.delete(f"/user/api-keys/{streaming['id']}", headers=bearer(key))  # noqa: E731
    body = UpstreamBody(first.encode(), revoke, thinking, rest)  # revoked while upstream only keeps alive
    upstream.post(f"{UPSTREAM}/chat/completions", body=body)
    response = client.post("/v1/chat/completions", json=STREAM_BODY, headers=bearer(streaming_key), buffered=False)
    relayed = b"".join(response.response).decode()
    response.close()
    assert '"a.' in relayed and '"b"' not in relayed  # cut at the keep-alive, before "b"
    assert json.loads(relayed.split("data: ")[-1])["error"]["code"] == "api_key_revoked"
    assert sql("SELECT status FROM api_keys WHERE id = %s", (streaming["id"],)) == [{"status": "revoked"}]
    [books] = sql("SELECT reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert books["reserved_credits"] == 0


@pytest.mark.parametrize("ending", ["revoke_key", "suspend_user"])
def test_a_stream_is_cut_when_its_key_is_revoked_or_user_suspended(client, upstream, sql, instant_key_checks, ending):
    user, key = create_user(client, credits="1.00", plan="team")
    streaming, streaming_key = create_key(client, key, name="streaming")
    response, chunks = open_stream(client, streaming_key, upstream, {"prompt_tokens": 5, "completion_tokens": 3})
    if ending == "revoke_key":
        assert client.delete(f"/user/api-keys/{streaming['id']}", headers=bearer(key)).status_code == 200
    else:
        client.patch(f"/admin/users/{user['id']}", json={"status": "suspended"}, headers=ADMIN)
    rest = b"".join(chunks).decode()
    response.close()
    events = [line.removeprefix("data: ") for line in rest.split("\n\n") if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "api_key_revoked"
    assert "[DONE]" not in rest
    [row] = sql("SELECT status, cost FROM usage_records WHERE user_id = %s", (user["id"],))
    assert row["status"] == "incomplete" and row["cost"] > 0  # what was delivered is charged
    [books] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert books == {"credits": Decimal("1.00") - row["cost"], "reserved_credits": 0}
