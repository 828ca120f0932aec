"""usage_rollup: hourly and daily aggregates from usage_records, idempotent, on real Postgres."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ops_gateway.core import db
from ops_gateway.maintenance import rollups
from tests.helpers import ADMIN

ROLLUP_COLUMNS = "granularity, bucket_start, user_id, model, requests, errors, prompt_tokens, completion_tokens, cost"


def insert_usage(sql, user_id, model, created_at, status="success", prompt=10, completion=5, cost="0.01"):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, prompt_tokens, completion_tokens, total_tokens,"
        " cost, status, latency_ms, created_at) VALUES ('r', %s, %s, %s, %s, %s, %s, %s, 100, %s)",
        (user_id, model, prompt, completion, prompt + completion, cost, status, created_at),
    )


def rollup_rows(sql):
    return sql(f"SELECT {ROLLUP_COLUMNS} FROM usage_rollups ORDER BY {ROLLUP_COLUMNS}")


def run_rollup(client):
    response = client.post("/admin/jobs/usage_rollup/run", headers=ADMIN)
    assert response.status_code == 200 and response.get_json()["status"] == "success", response.get_json()
    return response.get_json()["details"]


def test_rollup_aggregates_per_hour_and_day_for_each_user_and_model(client, sql):
    this_hour = rollups.truncate(datetime.now(UTC), "hour")
    last_hour = this_hour - timedelta(hours=1)
    insert_usage(sql, 1, "m/a", this_hour + timedelta(minutes=1))
    insert_usage(sql, 1, "m/a", this_hour + timedelta(minutes=2), status="upstream_error", prompt=3, completion=0)
    insert_usage(sql, 1, "m/b", last_hour + timedelta(minutes=5))
    insert_usage(sql, 2, "m/a", last_hour + timedelta(minutes=5), cost="0.5")
    details = run_rollup(client)
    assert details["hour"]["rows"] == 3

    hourly = sql(
        "SELECT bucket_start, user_id, model, requests, errors, prompt_tokens, completion_tokens, cost, latency_ms_sum"
        " FROM usage_rollups WHERE granularity = 'hour' ORDER BY bucket_start, user_id, model"
    )
    assert [(r["bucket_start"], r["user_id"], r["model"], r["requests"], r["errors"]) for r in hourly] == [
        (last_hour, 1, "m/b", 1, 0),
        (last_hour, 2, "m/a", 1, 0),
        (this_hour, 1, "m/a", 2, 1),
    ]
    assert hourly[2]["prompt_tokens"] == 13 and hourly[2]["completion_tokens"] == 5
    assert hourly[2]["cost"] == Decimal("0.02") and hourly[2]["latency_ms_sum"] == 200
    daily = sql("SELECT user_id, sum(requests) AS requests FROM usage_rollups WHERE granularity = 'day' GROUP BY 1")
    assert {r["user_id"]: r["requests"] for r in daily} == {1: 3, 2: 1}


def test_rerunning_a_window_gives_the_same_rows(client, sql):
    now = datetime.now(UTC)
    for minutes in (1, 30, 70, 130):
        insert_usage(sql, 7, "m/a", now - timedelta(minutes=minutes))
    run_rollup(client)
    first = rollup_rows(sql)
    run_rollup(client)
    assert rollup_rows(sql) == first
    assert sum(r["requests"] for r in first if r["granularity"] == "hour") == 4


def test_rollup_follows_changed_rows_in_its_window(app, sql):
    start = rollups.truncate(datetime.now(UTC), "hour") - timedelta(hours=1)
    insert_usage(sql, 3, "m/a", start + timedelta(minutes=10))
    insert_usage(sql, 3, "m/a", start + timedelta(minutes=20))
    with app.app_context(), db.transaction() as cur:
        rollups.recompute(cur, "hour", start, start + timedelta(hours=1))
    sql("DELETE FROM usage_records WHERE created_at = %s", (start + timedelta(minutes=20),))
    with app.app_context(), db.transaction() as cur:
        assert rollups.recompute(cur, "hour", start, start + timedelta(hours=1)) == 1
    assert sql("SELECT requests FROM usage_rollups WHERE granularity = 'hour'") == [{"requests": 1}]


def test_a_clock_that_was_down_catches_up_from_its_newest_bucket(app, sql):
    now = datetime.now(UTC)
    gap_start = rollups.truncate(now, "hour") - timedelta(hours=10)
    sql(
        "INSERT INTO usage_rollups (granularity, bucket_start, user_id, model, requests, errors, prompt_tokens,"
        " completion_tokens, cost, latency_ms_sum) VALUES ('hour', %s, 1, 'm/a', 1, 0, 0, 0, 0, 0)",
        (gap_start,),
    )
    insert_usage(sql, 1, "m/a", gap_start + timedelta(hours=4))  # outside the usual two-hour lookback
    with app.app_context(), db.transaction() as cur:
        report = rollups.roll_up(cur, now)
    assert datetime.fromisoformat(report["hour"]["start"]) == gap_start
    assert sql("SELECT count(*) AS n FROM usage_rollups WHERE granularity = 'hour'")[0]["n"] == 1
