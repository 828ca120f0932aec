"""The proxy under gunicorn with several workers against the project's fake OpenRouter."""

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import requests

from tests.e2e.gateway_calls import ADMIN, MODEL, complete, create_user


def test_completions_across_workers_charge_exactly_what_usage_records(gateway, sql):
    server = gateway(workers=4)
    user_id, headers, _ = create_user(server.url, "10.00")
    with ThreadPoolExecutor(16) as pool:
        plain = list(pool.map(lambda _: complete(server.url, headers), range(40)))
        streamed = list(pool.map(lambda _: complete(server.url, headers, stream=True), range(20)))
    assert all(status == 200 for status, _ in plain + streamed)
    assert all(events[-1] == "data: [DONE]" for _, events in streamed)
    usage_chunks = [json.loads(e[6:]) for _, events in streamed for e in events if '"usage"' in e]
    assert len(usage_chunks) == 20
    balance = Decimal(requests.get(f"{server.url}/user/balance", headers=headers, timeout=10).json()["credits"])
    [totals] = sql("SELECT count(*) AS n, sum(cost) AS cost FROM usage_records WHERE user_id = %s", (user_id,))
    [ledger] = sql(
        "SELECT sum(amount) AS debits FROM credit_transactions WHERE user_id = %s AND kind = 'usage'", (user_id,)
    )
    assert totals["n"] == 60
    assert Decimal("10.00") - balance == totals["cost"] == -ledger["debits"]
    assert sql("SELECT reserved_credits FROM users WHERE id = %s", (user_id,))[0]["reserved_credits"] == 0


def test_model_refresh_is_visible_through_every_worker(gateway):
    server = gateway(workers=4)
    refreshed = requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=10).json()
    assert refreshed["status"] == "success" and refreshed["total_models"] > 0
    statuses = [
        requests.get(f"{server.url}/admin/cache-status", headers=ADMIN, timeout=10).json()["cache_info"]
        for _ in range(24)
    ]
    assert {(s["refresh_count"], s["total_cached_models"], s["is_valid"]) for s in statuses} == {
        (1, refreshed["total_models"], True)
    }


def test_upstream_outage_serves_stale_models_and_charges_nothing(gateway, upstream, sql):
    server = gateway(workers=2)
    user_id, headers, _ = create_user(server.url, "1.00")
    assert requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=10).status_code == 200
    requests.post(f"{upstream.url}/_control", json={"outage": True}, timeout=5).raise_for_status()

    failed = requests.post(f"{server.url}/admin/refresh-models", headers=ADMIN, timeout=30)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "upstream_unavailable"
    models = requests.get(f"{server.url}/v1/models", headers=headers, timeout=10)
    assert models.status_code == 200 and len(models.json()["data"]) > 0
    status, body = complete(server.url, headers)
    assert status == 502 and body["error"]["code"] == "upstream_unavailable"
    assert requests.get(f"{server.url}/health", timeout=10).json()["openrouter"] == "error"
    info = requests.get(f"{server.url}/admin/cache-status", headers=ADMIN, timeout=10).json()["cache_info"]
    assert info["is_stale"] and info["last_error"]
    assert sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))[0] == {
        "credits": Decimal("1.00"),
        "reserved_credits": 0,
    }


def test_concurrent_requests_cannot_overdraw(gateway, sql):
    server = gateway(workers=4)
    # Hold per request: prompt estimate (8 tokens) x 0.00000015 + 16 x 0.0000006 = 0.0000108; credits cover 5.
    user_id, headers, _ = create_user(server.url, "0.000054")
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: complete(server.url, headers, content="hello"), range(20)))
    successes = [r for r in results if r[0] == 200]
    assert 1 <= len(successes) <= 5
    assert all(status in (200, 402) for status, _ in results)
    row = sql("SELECT credits, reserved_credits FROM users WHERE id = %s", (user_id,))[0]
    assert row["credits"] >= 0 and row["reserved_credits"] == 0


def test_official_openai_sdk_works_unchanged(gateway):
    server = gateway(workers=2)
    _, _, key = create_user(server.url, "1.00")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    assert MODEL in {model.id for model in client.models.list()}
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 8
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 8
    assert chunks[-1].usage.completion_tokens == 8
