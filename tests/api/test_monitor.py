"""/user/monitor and /admin/monitor: exact figures after real completions (OpenRouter faked)."""

from datetime import date
from decimal import Decimal

import pytest

from ops_gateway.observability import usage_metrics
from tests.helpers import ADMIN, assert_error, bearer, create_key, create_user
from tests.helpers.upstream import UPSTREAM, chat, completion

PRICE = {"prompt": Decimal("0.00000015"), "completion": Decimal("0.0000006")}


def cost(prompt, completion_tokens):
    return prompt * PRICE["prompt"] + completion_tokens * PRICE["completion"]


pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def test_user_monitor_reports_exactly_what_was_sent(client, upstream):
    user, key = create_user(client, credits="2.00", plan="team")
    _, other_key = create_user(client, credits="2.00", plan="team")
    for _ in range(3):
        assert chat(client, key).status_code == 200
    upstream.post(f"{UPSTREAM}/chat/completions", json=completion(100, 7))
    assert chat(client, key).status_code == 200
    assert chat(client, key, model="test/free-model").status_code == 200
    assert chat(client, other_key).status_code == 200  # someone else's usage stays out

    response = client.get("/user/monitor", headers=bearer(key))
    assert response.status_code == 200
    body = response.get_json()
    spent = 3 * cost(10, 20) + cost(100, 7)
    assert body["status"] == "success" and body["user_id"] == user["id"] and body["plan"] == "team"
    assert body["api_key"] == key[:11] + "…" + key[-4:]
    assert Decimal(body["current_credits"]) == Decimal("2.00") - spent
    usage = body["usage_metrics"]
    assert (usage["total_requests"], usage["requests_today"], usage["requests_this_month"]) == (5, 5, 5)
    assert usage["total_tokens"] == usage["tokens_today"] == usage["tokens_this_month"] == 90 + 107 + 107
    for field in ("total_cost", "cost_today", "cost_this_month"):
        assert Decimal(usage[field]) == spent, field
    assert usage["average_tokens_per_request"] == round(304 / 5, 2)
    assert usage["most_used_model"] == "openai/gpt-4o-mini"
    assert usage["last_request_time"]
    by_model = {m["model"]: m for m in usage["by_model"]}
    assert by_model["openai/gpt-4o-mini"]["requests"] == 4
    assert Decimal(by_model["openai/gpt-4o-mini"]["cost"]) == spent
    assert (by_model["test/free-model"]["requests"], by_model["test/free-model"]["cost"]) == (1, "0.00")
    windows = body["rate_limits"]
    assert windows["requests_per_minute"]["used"] == 5 and windows["requests_per_minute"]["limit"] == 600
    assert windows["tokens_per_minute"]["used"] == 304
    assert set(windows["tokens_per_day"]) >= {"limit", "used", "remaining", "reset_at"}


def test_user_monitor_reads_daily_totals_not_usage_records(client, sql):
    _, key = create_user(client, credits="1.00", plan="team")
    chat(client, key)
    sql("TRUNCATE usage_records")  # the monitor must not need the raw rows
    usage = client.get("/user/monitor", headers=bearer(key)).get_json()["usage_metrics"]
    assert usage["total_requests"] == 1 and Decimal(usage["total_cost"]) == cost(10, 20)


def test_user_monitor_counts_earlier_days_in_totals_only(client, sql):
    user, key = create_user(client, credits="1.00", plan="team")
    sql(
        "INSERT INTO usage_daily_totals (day, user_id, model, requests, prompt_tokens, completion_tokens, cost)"
        " VALUES ((now() AT TIME ZONE 'UTC')::date - 40, %s, 'openai/gpt-4o-mini', 7, 70, 0, 0.25)",
        (user["id"],),
    )
    chat(client, key)
    usage = client.get("/user/monitor", headers=bearer(key)).get_json()["usage_metrics"]
    assert usage["total_requests"] == 8 and usage["requests_today"] == 1 and usage["requests_this_month"] == 1
    assert Decimal(usage["total_cost"]) == Decimal("0.25") + cost(10, 20)


def test_user_monitor_needs_the_usage_scope(client):
    _, key = create_user(client)
    _, scoped = create_key(client, key, name="chat-only", scopes=["chat:write"])
    assert_error(client.get("/user/monitor", headers=bearer(scoped)), 403, "insufficient_scope")
    assert_error(client.get("/user/monitor"), 401, "unauthorized")


def test_admin_monitor_sums_every_user_and_masks_keys(make_app, upstream, sql):
    client = make_app(SLOW_QUERY_MS=0).test_client()  # every statement counts as slow
    first, first_key = create_user(client, credits="1.00", plan="team")
    second, second_key = create_user(client, credits="1.00", plan="team")
    for _ in range(2):
        chat(client, first_key)
    chat(client, second_key)
    upstream.post(f"{UPSTREAM}/chat/completions", status_code=500, json={"error": {"message": "boom"}})
    chat(client, second_key)
    sql(
        "INSERT INTO usage_daily_totals (day, user_id, model, requests, prompt_tokens, completion_tokens, cost)"
        " VALUES ((now() AT TIME ZONE 'UTC')::date - 1, %s, 'openai/gpt-4o-mini', 10, 100, 0, 1.5)",
        (first["id"],),
    )
    sql("INSERT INTO job_runs (job, status, runner, finished_at) VALUES ('usage_rollup', 'success', 't', now())")
    sql("INSERT INTO alerts (rule, status, message) VALUES ('cpu_usage', 'firing', 'hot')")

    response = client.get("/admin/monitor", headers=ADMIN)
    assert response.status_code == 200
    assert first_key not in response.get_data(as_text=True) and second_key not in response.get_data(as_text=True)
    data = response.get_json()["data"]
    assert (data["total_users"], data["active_users_today"]) == (2, 2)
    assert (data["total_requests_today"], data["total_tokens_today"]) == (4, 90)
    assert Decimal(data["total_cost_today"]) == 3 * cost(10, 20)
    system = data["system_usage_metrics"]
    assert system["total_requests"] == 14 and system["requests_today"] == 4
    assert Decimal(system["total_cost"]) == Decimal("1.5") + 3 * cost(10, 20)
    top = data["top_users_by_usage"]
    assert [(u["user_id"], u["requests"], u["tokens_used"]) for u in top] == [
        (first["id"], 2, 60),
        (second["id"], 2, 30),
    ]
    assert top[0]["api_key"] == first_key[:11] + "…" + first_key[-4:]
    assert len(data["recent_activity"]) == 4 and data["recent_activity"][0]["status"] == "error"
    performance = data["performance"]
    assert performance["requests_5m"] == 4 and performance["error_rate_5m"] == 25.0
    assert performance["latency_ms"]["p50"] is not None and performance["requests_per_second_1m"] > 0
    assert data["cache"]["has_data"] is True
    database = data["database"]
    assert database["size_bytes"] > 0 and database["slow_queries_1h"] > 0 and database["pool_in_use"] >= 1
    assert set(data["resources"]) >= {"cpu_percent", "rss_bytes", "load_avg"}
    assert data["scheduler"]["usage_rollup"]["status"] == "success"
    assert [a["rule"] for a in data["alerts"]] == ["cpu_usage"]


def test_admin_monitor_caches_earlier_days_until_tomorrow(client, sql, redis_client):
    user, _ = create_user(client)
    insert = (
        "INSERT INTO usage_daily_totals (day, user_id, model, requests, prompt_tokens, completion_tokens, cost)"
        " VALUES ((now() AT TIME ZONE 'UTC')::date - %s, %s, 'm', 5, 5, 5, 0.5)"
    )
    sql(insert, (3, user["id"]))
    first = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["system_usage_metrics"]
    sql(insert, (4, user["id"]))  # a past day changing is not expected; the cache is not re-read from it
    second = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["system_usage_metrics"]
    assert first["total_requests"] == second["total_requests"] == 5
    assert Decimal(second["total_cost"]) == Decimal("0.5")
    redis_client.flushdb()
    third = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["system_usage_metrics"]
    assert third["total_requests"] == 10


def test_admin_monitor_carries_history_forward_across_days_and_months(client, sql, monkeypatch):
    user, _ = create_user(client)

    def add_day(day, requests):
        sql(
            "INSERT INTO usage_daily_totals (day, user_id, model, requests, prompt_tokens, completion_tokens, cost)"
            " VALUES (%s, %s, 'm', %s, 0, 0, 0)",
            (day, user["id"], requests),
        )

    def monitor_on(today):
        monkeypatch.setattr(usage_metrics, "current_day", lambda cur: {"today": today, "month": today.replace(day=1)})
        return client.get("/admin/monitor", headers=ADMIN).get_json()["data"]["system_usage_metrics"]

    add_day(date(2026, 3, 30), 5)
    add_day(date(2026, 3, 31), 2)
    march_31 = monitor_on(date(2026, 3, 31))
    assert (march_31["total_requests"], march_31["requests_this_month"], march_31["requests_today"]) == (7, 7, 2)
    add_day(date(2026, 3, 29), 100)  # not re-read: April builds on March 31st's cached history
    april_1 = monitor_on(date(2026, 4, 1))
    assert (april_1["total_requests"], april_1["requests_this_month"], april_1["requests_today"]) == (7, 0, 0)


def insert_endpoint_days(sql, user_id):
    """Daily totals of chat, embeddings and responses today, and of embeddings 40 days ago (another month)."""
    for back, model, endpoint, requests, prompt, output, spent in [
        (0, "m/a", "chat", 2, 10, 20, "0.03"),
        (0, "m/embed", "embeddings", 3, 300, 0, "0.003"),
        (0, "m/a", "responses", 1, 50, 70, "0.2"),
        (40, "m/embed", "embeddings", 4, 400, 0, "0.004"),
    ]:
        sql(
            "INSERT INTO usage_daily_totals (day, user_id, model, endpoint, requests, prompt_tokens,"
            " completion_tokens, cost) VALUES ((now() AT TIME ZONE 'UTC')::date - %s, %s, %s, %s, %s, %s, %s, %s)",
            (back, user_id, model, endpoint, requests, prompt, output, spent),
        )


def endpoint_figures(usage):
    """{endpoint: (requests, tokens, cost, today's three, this month's three)} from a usage_metrics document."""
    fields = ["requests", "total_tokens", "cost"]
    fields += [f"{name}_{period}" for period in ("today", "this_month") for name in ("requests", "tokens", "cost")]
    return {e["endpoint"]: tuple(e[field] for field in fields) for e in usage["by_endpoint"]}


ENDPOINT_FIGURES = {
    "embeddings": (7, 700, "0.007", 3, 300, "0.003", 3, 300, "0.003"),
    "chat": (2, 30, "0.03", 2, 30, "0.03", 2, 30, "0.03"),
    "responses": (1, 120, "0.20", 1, 120, "0.20", 1, 120, "0.20"),
}


def test_user_monitor_breaks_usage_down_by_endpoint(client, sql):
    user, key = create_user(client, plan="team")
    insert_endpoint_days(sql, user["id"])
    usage = client.get("/user/monitor", headers=bearer(key)).get_json()["usage_metrics"]
    assert [e["endpoint"] for e in usage["by_endpoint"]] == ["embeddings", "chat", "responses"]  # most requests first
    assert endpoint_figures(usage) == ENDPOINT_FIGURES
    by_model = {m["model"]: m["requests"] for m in usage["by_model"]}
    assert by_model == {"m/embed": 7, "m/a": 3}  # a model's figures add up every endpoint
    assert usage["total_requests"] == 10 and usage["requests_today"] == 6


def test_admin_monitor_breaks_usage_down_by_endpoint_from_cache_and_today(client, sql, redis_client):
    first, _ = create_user(client)
    second, _ = create_user(client)
    insert_endpoint_days(sql, first["id"])
    insert_endpoint_days(sql, second["id"])
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, served_model, endpoint, prompt_tokens,"
        " completion_tokens, total_tokens, cost, status, latency_ms) VALUES"
        " ('r-1', %s, 'm/a', 'm/b', 'responses', 1, 1, 2, 0, 'success', 5)",
        (first["id"],),
    )
    both_users = {
        "embeddings": (14, 1400, "0.014", 6, 600, "0.006", 6, 600, "0.006"),
        "chat": (4, 60, "0.06", 4, 60, "0.06", 4, 60, "0.06"),
        "responses": (2, 240, "0.40", 2, 240, "0.40", 2, 240, "0.40"),
    }
    for _ in range(2):  # computed, then the days before today from the Redis cache
        data = client.get("/admin/monitor", headers=ADMIN).get_json()["data"]
        assert endpoint_figures(data["system_usage_metrics"]) == both_users
    assert redis_client.keys("gw:monitor:usage-by-endpoint-before:*")
    [activity] = data["recent_activity"]
    assert (activity["endpoint"], activity["model"], activity["served_model"]) == ("responses", "m/a", "m/b")


def test_alerts_lists_firing_and_recent_incidents(client, sql):
    sql("INSERT INTO alerts (rule, status, message, resolved_at) VALUES ('p95_latency', 'resolved', 'slow', now())")
    sql("INSERT INTO alerts (rule, status, message, value, threshold) VALUES ('error_rate', 'firing', 'bad', 9, 5)")
    body = client.get("/admin/alerts", headers=ADMIN).get_json()
    assert [a["rule"] for a in body["active"]] == ["error_rate"]
    assert body["active"][0]["value"] == 9.0 and body["active"][0]["threshold"] == 5.0
    assert [a["rule"] for a in body["recent"]] == ["error_rate", "p95_latency"]
    resolved = client.get("/admin/alerts?status=resolved", headers=ADMIN).get_json()["recent"]
    assert [a["rule"] for a in resolved] == ["p95_latency"] and resolved[0]["resolved_at"]
