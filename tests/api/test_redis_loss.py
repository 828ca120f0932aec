"""Redis losing everything (FLUSHALL here; a restart in tests/e2e/test_redis_restart.py): quotas are
rebuilt from Postgres, concurrency slots are never negative or stuck, and /health tells when the
admission script cannot run."""

import pytest

from tests.helpers import assert_error, create_user
from tests.helpers.upstream import chat

pytestmark = pytest.mark.usefixtures("upstream")  # OpenRouter faked for every test


def test_daily_request_quota_keeps_counting_what_postgres_recorded_after_a_flush(client, redis_client, sql):
    sql("UPDATE plans SET daily_request_quota = 5 WHERE name = 'team'")
    user, key = create_user(client, credits="5.00", plan="team")
    assert [chat(client, key).status_code for _ in range(3)] == [200, 200, 200]
    redis_client.flushall()
    assert [chat(client, key).status_code for _ in range(2)] == [200, 200]
    refused = chat(client, key)
    assert_error(refused, 429, "rate_limited")
    assert refused.get_json()["error"]["details"]["window"] == "daily_request_quota"
    assert sql("SELECT sum(requests) AS n FROM usage_daily_totals WHERE user_id = %s", (user["id"],))[0]["n"] == 5


def test_monthly_quotas_start_from_the_months_usage_in_postgres(client, redis_client, sql):
    sql("UPDATE plans SET monthly_request_quota = 4, monthly_token_quota = 10000000 WHERE name = 'team'")
    user, key = create_user(client, credits="5.00", plan="team")
    assert chat(client, key).status_code == 200
    # Usage recorded earlier this month (the first of the month is in the month, whatever today is).
    sql(
        "INSERT INTO usage_daily_totals (day, user_id, model, requests, prompt_tokens, completion_tokens, cost)"
        " VALUES (date_trunc('month', now() AT TIME ZONE 'UTC')::date, %s, 'earlier/model', 2, 10, 10, 0)"
        " ON CONFLICT (user_id, day, model, endpoint, org_id) DO UPDATE SET requests = 2",
        (user["id"],),
    )
    redis_client.flushall()
    assert chat(client, key).status_code == 200
    refused = chat(client, key)
    assert_error(refused, 429, "rate_limited")
    assert refused.get_json()["error"]["details"]["window"] == "monthly_request_quota"


def test_a_token_quota_is_rebuilt_from_the_tokens_postgres_recorded(client, redis_client, sql):
    user, key = create_user(client, credits="5.00", plan="team")
    assert chat(client, key).status_code == 200
    [used] = sql(
        "SELECT sum(prompt_tokens + completion_tokens) AS tokens FROM usage_daily_totals WHERE user_id = %s",
        (user["id"],),
    )
    redis_client.flushall()
    sql("UPDATE plans SET daily_token_quota = %s WHERE name = 'team'", (used["tokens"],))
    refused = chat(client, key)
    assert_error(refused, 429, "rate_limited")
    assert refused.get_json()["error"]["details"]["window"] == "daily_token_quota"


def test_health_reports_redis_failing_when_the_admission_script_cannot_run(app, redis_client):
    client = app.test_client()
    assert client.get("/health").get_json()["redis"] == "connected"
    app.extensions["ops_gateway.gate"] = app.extensions["ops_gateway.redis"].register_script(
        "return redis.call('no_such_command')"
    )
    body = client.get("/health").get_json()
    assert body["redis"] == "failing" and body["status"] == "degraded"
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.get_json()["reason"] == "redis failing"
