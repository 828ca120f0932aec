"""retention: expired usage months dropped, old rows deleted in batches, the ledger kept, partitions ahead."""

from datetime import UTC, date, datetime, timedelta

from ops_gateway.maintenance import retention
from tests.helpers import holding_lock
from tests.helpers.jobs import run_retention


def count(sql, table, where="TRUE", params=None):
    return sql(f"SELECT count(*) AS n FROM {table} WHERE {where}", params)[0]["n"]


def insert_usage(sql, created_at, rows=1):
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status, created_at)"
        " SELECT 'r' || g, 1, 'm', 'success', %s FROM generate_series(1, %s) g",
        (created_at, rows),
    )


def test_expired_usage_months_are_dropped_whole_and_recent_ones_kept(client, sql):
    sql("SELECT ensure_usage_partition('2020-01-01')")
    insert_usage(sql, datetime(2020, 1, 15, tzinfo=UTC), rows=50)
    insert_usage(sql, datetime(2019, 6, 1, tzinfo=UTC), rows=3)  # no partition: lands in the default one
    insert_usage(sql, datetime.now(UTC), rows=2)
    details = run_retention(client)
    assert details["partitions_dropped"] == ["usage_records_2020_01"]
    assert sql("SELECT to_regclass('usage_records_2020_01') AS t")[0]["t"] is None
    assert details["deleted"]["usage_records_default"] == 3
    assert count(sql, "usage_records") == 2


def test_a_month_partly_inside_retention_is_kept(make_app, sql):
    client = make_app(USAGE_RETENTION_DAYS=10).test_client()
    month = date.today().replace(day=1)
    insert_usage(sql, datetime(month.year, month.month, 1, tzinfo=UTC))
    assert f"usage_records_{month:%Y_%m}" not in run_retention(client)["partitions_dropped"]
    assert count(sql, "usage_records") == 1


def test_old_audit_rows_security_events_and_job_runs_go_in_batches(client, sql, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 100)  # several batches without thousands of rows
    old, recent = datetime.now(UTC) - timedelta(days=401), datetime.now(UTC) - timedelta(days=1)
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, created_at)"
        " SELECT 'create', 'admin', CASE WHEN g <= 250 THEN %s ELSE %s END::timestamptz FROM generate_series(1, 260) g",
        (old, recent),
    )
    sql("INSERT INTO security_events (type, created_at) VALUES ('ip_blocked', %s), ('ip_blocked', %s)", (old, recent))
    sql(
        "INSERT INTO job_runs (job, status, runner, started_at)"
        " VALUES ('x', 'success', 't', %s), ('x', 'success', 't', %s)",
        (datetime.now(UTC) - timedelta(days=31), recent),
    )
    details = run_retention(client)
    assert details["deleted"]["api_key_audit_logs"] == 250
    assert details["deleted"]["security_events"] == 1
    assert details["deleted"]["job_runs"] == 1
    assert count(sql, "api_key_audit_logs") == 10
    assert count(sql, "job_runs", "job = 'x'") == 1


def test_the_credit_ledger_is_never_deleted(client, sql):
    sql("INSERT INTO users (id, email, plan) VALUES (1, 'a@example.com', 'trial')")
    sql(
        "INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor, created_at)"
        " VALUES (1, 5, 5, 'grant', 'opening', 'admin', now() - interval '20 years')"
    )
    details = run_retention(client)
    assert "credit_transactions" not in details["deleted"]
    assert count(sql, "credit_transactions") == 1


def test_next_months_partitions_are_created_ahead(client, sql):
    ahead = retention.add_months(date.today().replace(day=1), retention.MONTHS_AHEAD)
    name = f"usage_records_{ahead:%Y_%m}"
    sql(f"DROP TABLE IF EXISTS {name}")
    details = run_retention(client)
    assert name in details["partitions_created"]
    assert sql("SELECT to_regclass(%s) IS NOT NULL AS exists", (name,))[0]["exists"]
    assert run_retention(client)["partitions_created"] == []


def test_zero_days_keeps_data_forever(make_app, sql):
    client = make_app(AUDIT_RETENTION_DAYS=0).test_client()
    sql("INSERT INTO api_key_audit_logs (action, actor, created_at) VALUES ('create', 'a', now() - interval '9 years')")
    assert "api_key_audit_logs" not in run_retention(client)["deleted"]
    assert count(sql, "api_key_audit_logs") == 1


def test_a_partition_in_use_is_not_waited_for_but_dropped_on_the_next_run(client, sql, database_url, monkeypatch):
    monkeypatch.setattr(retention, "LOCK_TIMEOUT", "100ms")  # give up on the lock quickly
    sql("SELECT ensure_usage_partition('2020-01-01')")
    with holding_lock(database_url, "usage_records_2020_01", "ACCESS SHARE"):  # a long read of that month
        details = run_retention(client)
    assert details["partitions_dropped"] == [] and details["deferred"] == ["usage_records_2020_01"]
    assert sql("SELECT to_regclass('usage_records_2020_01') IS NOT NULL AS exists")[0]["exists"]
    details = run_retention(client)
    assert details["partitions_dropped"] == ["usage_records_2020_01"] and details["deferred"] == []


def test_a_partition_ahead_is_not_waited_for_but_created_on_the_next_run(client, sql, database_url, monkeypatch):
    monkeypatch.setattr(retention, "LOCK_TIMEOUT", "100ms")
    ahead = retention.add_months(date.today().replace(day=1), retention.MONTHS_AHEAD)
    name = f"usage_records_{ahead:%Y_%m}"
    sql(f"DROP TABLE IF EXISTS {name}")
    with holding_lock(database_url, "ONLY usage_records", "SHARE UPDATE EXCLUSIVE"):  # as a VACUUM of it would
        details = run_retention(client)
    assert name not in details["partitions_created"] and details["deferred"] == [name]
    assert sql("SELECT to_regclass(%s) IS NULL AS missing", (name,))[0]["missing"]
    details = run_retention(client)
    assert details["partitions_created"] == [name] and details["deferred"] == []
