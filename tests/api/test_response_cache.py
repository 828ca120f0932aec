"""The opt-in response cache: hit and miss, tenant isolation, TTL expiry, a streamed replay, what a
hit is charged, two identical requests at once, a flushed Redis, no-store and a key's default."""

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.orgs import create_org, member_with_key
from tests.helpers.upstream import CATALOGUE, EMBEDDER, SSE, UPSTREAM, chunk, completion, mock_model_lists, sse

COST = Decimal(10) * Decimal("0.00000015") + Decimal(20) * Decimal("0.0000006")  # the faked usage: 0.0000135
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}


@pytest.fixture
def upstream(requests_mock):
    mock_model_lists(requests_mock, CATALOGUE, [EMBEDDER])
    requests_mock.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    embedding = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]}
    usage = {"prompt_tokens": 50, "total_tokens": 50, "cost": 0.000001}
    requests_mock.post(f"{UPSTREAM}/embeddings", json={**embedding, "model": EMBEDDER["id"], "usage": usage})
    return requests_mock


def calls(upstream, path="/chat/completions"):
    return sum(1 for call in upstream.request_history if call.method == "POST" and call.path.endswith(path))


def cached(client, key, ttl="60", body=None, path="chat/completions", **headers):
    headers = {**bearer(key), **({"X-Gateway-Cache-TTL": ttl} if ttl else {}), **headers}
    return client.post(f"/v1/{path}", json=body or BODY, headers=headers)


def usage_rows(sql, user_id):
    return sql("SELECT cost, cache_hit, upstream_cost FROM usage_records WHERE user_id = %s ORDER BY id", (user_id,))


def test_a_repeat_is_answered_from_the_cache_and_charged_nothing_by_default(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    first = cached(client, key)
    assert first.status_code == 200 and first.headers["X-Gateway-Cache"] == "miss"
    second = cached(client, key)
    assert second.status_code == 200 and second.headers["X-Gateway-Cache"] == "hit"
    assert second.get_json() == first.get_json() and calls(upstream) == 1
    assert second.headers["X-Gateway-Cost"] == "0.00"
    assert usage_rows(sql, user["id"]) == [
        {"cost": COST, "cache_hit": False, "upstream_cost": None},
        {"cost": 0, "cache_hit": True, "upstream_cost": None},
    ]
    [hit] = client.get("/user/requests", query_string={"limit": 1}, headers=bearer(key)).get_json()["requests"]
    assert (hit["cache_hit"], hit["upstream_latency_ms"]) == (True, None)
    [balance] = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user["id"],))
    assert balance == {"credits": Decimal("1.00") - COST, "reserved_credits": 0}
    other = cached(client, key, body={**BODY, "max_tokens": 49})  # another body: another entry
    assert other.headers["X-Gateway-Cache"] == "miss" and calls(upstream) == 2


def test_a_hit_pays_the_configured_factor_of_the_original(make_app, upstream, sql):
    client = make_app(CACHE_HIT_PRICE_FACTOR=Decimal("0.5")).test_client()
    user, key = create_user(client, credits="1.00", plan="team")
    cached(client, key)
    hit = cached(client, key)
    assert hit.headers["X-Gateway-Cache"] == "hit" and Decimal(hit.headers["X-Gateway-Cost"]) == COST / 2
    assert [row["cost"] for row in usage_rows(sql, user["id"])] == [COST, COST / 2]


def test_one_tenants_entries_never_answer_another(client, upstream):
    _, alice = create_user(client, credits="1.00", plan="team")
    _, bob = create_user(client, credits="1.00", plan="team")
    org = create_org(client, credits="1.00")
    _, _, first_member = member_with_key(client, org["id"])
    _, _, second_member = member_with_key(client, org["id"])
    assert cached(client, alice).headers["X-Gateway-Cache"] == "miss"
    assert cached(client, bob).headers["X-Gateway-Cache"] == "miss"  # another user
    assert cached(client, first_member).headers["X-Gateway-Cache"] == "miss"  # an org is a tenant of its own
    assert cached(client, second_member).headers["X-Gateway-Cache"] == "hit"  # the same org's
    _, alice_second_key = create_key(client, alice, name="second")
    assert cached(client, alice_second_key).headers["X-Gateway-Cache"] == "hit"  # the same user's
    assert calls(upstream) == 3


def test_an_entry_expires_with_its_ttl(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    assert cached(client, key, ttl="1").headers["X-Gateway-Cache"] == "miss"
    assert cached(client, key, ttl="1").headers["X-Gateway-Cache"] == "hit"
    time.sleep(1.2)
    assert cached(client, key, ttl="1").headers["X-Gateway-Cache"] == "miss"
    assert calls(upstream) == 2


def test_a_cached_stream_is_replayed_event_for_event(client, upstream, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    events = sse(chunk("Hel"), chunk("lo"), chunk(usage={"prompt_tokens": 10, "completion_tokens": 20}), "[DONE]")
    upstream.post(f"{UPSTREAM}/chat/completions", text=events, headers=SSE)
    first = cached(client, key, body={**BODY, "stream": True})
    original = first.get_data(as_text=True)
    assert first.headers["X-Gateway-Cache"] == "miss" and '"Hel"' in original and ": gateway-cost=" in original
    replay = cached(client, key, body={**BODY, "stream": True})
    replayed = replay.get_data(as_text=True)
    assert replay.headers["X-Gateway-Cache"] == "hit" and calls(upstream) == 1
    assert replayed == "".join(
        line + "\n\n" for line in original.split("\n\n") if line and ": gateway-cost=" not in line
    )
    assert replayed.endswith("data: [DONE]\n\n")
    assert [row["cache_hit"] for row in usage_rows(sql, user["id"])] == [False, True]
    upstream.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    assert cached(client, key).headers["X-Gateway-Cache"] == "miss"  # not streamed: another entry


def test_a_cut_stream_or_an_upstream_failure_is_not_kept(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=500, json={"error": {"code": 500, "message": "x"}})
    assert cached(client, key).status_code >= 500
    upstream.post(f"{UPSTREAM}/chat/completions", json=completion(10, 20))
    assert cached(client, key).headers["X-Gateway-Cache"] == "miss"
    upstream.post(f"{UPSTREAM}/chat/completions", text=sse(chunk("Hel"), chunk("lo")), headers=SSE)  # no [DONE]
    streamed = {**BODY, "stream": True}
    assert cached(client, key, body=streamed).headers["X-Gateway-Cache"] == "miss"
    assert cached(client, key, body=streamed).headers["X-Gateway-Cache"] == "miss"  # the cut one was not kept


def test_two_identical_requests_at_once_both_get_the_right_answer(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: cached(client, key), range(2)))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].get_json()["choices"] == answers[1].get_json()["choices"]
    assert 1 <= calls(upstream) <= 2


def test_a_flushed_redis_means_a_miss_not_an_error(client, upstream, redis_client):
    _, key = create_user(client, credits="1.00", plan="team")
    cached(client, key)
    redis_client.flushdb()
    assert cached(client, key).headers["X-Gateway-Cache"] == "miss" and calls(upstream) == 2


def test_no_store_bypasses_the_cache_both_ways(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    bypass = cached(client, key, **{"Cache-Control": "no-store"})
    assert bypass.status_code == 200 and "X-Gateway-Cache" not in bypass.headers
    assert cached(client, key).headers["X-Gateway-Cache"] == "miss"  # nothing was stored
    assert cached(client, key, **{"Cache-Control": "no-store"}).status_code == 200 and calls(upstream) == 3
    assert "X-Gateway-Cache" not in cached(client, key, ttl=None).headers  # not asked: not cached


def test_a_keys_default_ttl_caches_without_the_header(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    created, cached_key = create_key(client, key, name="cached", cache_ttl_seconds=300)
    assert created["cache_ttl_seconds"] == 300
    assert cached(client, cached_key, ttl=None).headers["X-Gateway-Cache"] == "miss"
    assert cached(client, cached_key, ttl=None).headers["X-Gateway-Cache"] == "hit"
    off = client.patch(f"/user/api-keys/{created['id']}", json={"cache_ttl_seconds": None}, headers=bearer(key))
    assert off.status_code == 200 and off.get_json()["cache_ttl_seconds"] is None
    assert "X-Gateway-Cache" not in cached(client, cached_key, ttl=None).headers


def test_embeddings_are_cached_too(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    body = {"model": EMBEDDER["id"], "input": ["a"]}
    assert cached(client, key, body=body, path="embeddings").headers["X-Gateway-Cache"] == "miss"
    hit = cached(client, key, body=body, path="embeddings")
    assert hit.headers["X-Gateway-Cache"] == "hit" and hit.get_json()["data"][0]["embedding"] == [0.5]
    assert calls(upstream, "/embeddings") == 1


@pytest.mark.parametrize("ttl", ["0", "-5", "abc", "1.5", str(10**9)])
def test_a_bad_ttl_header_is_400(client, upstream, ttl):
    _, key = create_user(client, credits="1.00", plan="team")
    error = assert_error(cached(client, key, ttl=ttl), 400, "invalid_cache_ttl")
    assert error["details"]["max_seconds"] == 86400 and calls(upstream) == 0


def test_hits_show_in_metrics_and_the_monitor(client, upstream):
    _, key = create_user(client, credits="1.00", plan="team")
    for _ in range(3):
        cached(client, key)
    cache = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["response_cache"]
    assert cache == {"requests_1h": 3, "hits_1h": 2, "hit_rate_1h": 66.67}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_response_cache_lookups_total{result="hit"}' in metrics
    assert "gateway_response_cache_stored_bytes_total" in metrics
