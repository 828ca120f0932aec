"""The audit-log counters (sql/0007): exact however rows arrive, change or go, and backfilled on upgrade."""

import shutil
import threading
from datetime import UTC, datetime, timedelta

import psycopg2
import psycopg2.extras
import pytest

from ops_gateway.core import migrations
from ops_gateway.core.db import Database
from ops_gateway.maintenance import retention
from tests.conftest import admin_execute, url_for_database
from tests.helpers.jobs import run_retention

# What the counter tables must hold: recomputed from the rows themselves (no empty counters).
EXPECTED_DAILY = (
    "SELECT action, (created_at AT TIME ZONE 'UTC')::date AS day, id % 16 AS slot, count(*) AS n"
    " FROM api_key_audit_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
EXPECTED_KEYED = (
    "SELECT user_id, api_key_id, action, (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n"
    " FROM api_key_audit_logs WHERE user_id IS NOT NULL OR api_key_id IS NOT NULL"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
)


def assert_counters_exact(sql):
    """Both counter tables equal the per-day counts of the rows as they are now."""
    assert sql("SELECT action, day, slot, n FROM audit_log_daily_counts ORDER BY 1, 2, 3") == sql(EXPECTED_DAILY)
    keyed = sql("SELECT user_id, api_key_id, action, day, n FROM audit_log_key_counts ORDER BY 1, 2, 3, 4")
    assert keyed == sql(EXPECTED_KEYED)


def seed(sql, days=6):
    """Two users with a key each, and rows every 5 hours over ``days`` days ending now; return the ids."""
    users = [
        r["id"] for r in sql("INSERT INTO users (email, plan) VALUES ('a@x.io', 'dev'), ('b@x.io', 'dev') RETURNING id")
    ]
    keys = [
        r["id"]
        for r in sql(
            "INSERT INTO api_keys (user_id, name, key_hash, prefix, last4)"
            " VALUES (%s, 'a', 'h1', 'gw_live_a', 'aaaa'), (%s, 'b', 'h2', 'gw_live_b', 'bbbb') RETURNING id",
            users,
        )
    ]
    sql(
        "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor, created_at)"
        " SELECT (ARRAY[NULL, %(u1)s, %(u1)s, %(u2)s])[1 + g %% 4], (ARRAY[NULL, NULL, %(k1)s, %(k2)s])[1 + g %% 4],"
        "        (ARRAY['auth_failure', 'user_updated', 'create', 'rotate'])[1 + g %% 4], 'test',"
        "        now() - g * interval '5 hours'"
        " FROM generate_series(0, %(rows)s) g",
        {"u1": users[0], "u2": users[1], "k1": keys[0], "k2": keys[1], "rows": days * 24 // 5},
    )
    return users, keys


def test_counters_follow_inserts_updates_deletes_and_truncate(sql):
    (u1, u2), (k1, _) = seed(sql)
    assert_counters_exact(sql)
    sql("UPDATE api_key_audit_logs SET created_at = created_at - interval '1 day' WHERE id % 3 = 0")
    sql("UPDATE api_key_audit_logs SET action = 'update' WHERE action = 'rotate' AND id % 2 = 0")
    sql("UPDATE api_key_audit_logs SET details = '{\"n\": 1}'")  # nothing counted changes
    assert_counters_exact(sql)
    sql("DELETE FROM api_keys WHERE id = %s", (k1,))  # its rows keep the user, lose the key
    sql("DELETE FROM users WHERE id = %s", (u2,))  # its rows lose both: out of audit_log_key_counts
    assert_counters_exact(sql)
    assert sql("SELECT count(*) AS n FROM audit_log_key_counts WHERE user_id = %s", (u2,)) == [{"n": 0}]
    sql("DELETE FROM api_key_audit_logs WHERE created_at < now() - interval '3 days'")
    assert_counters_exact(sql)
    sql("TRUNCATE api_key_audit_logs")
    counters = "SELECT (SELECT count(*) FROM audit_log_daily_counts) + (SELECT count(*) FROM audit_log_key_counts) AS n"
    assert sql(counters) == [{"n": 0}]


def test_retention_batches_keep_the_counters_exact(client, sql, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 7)
    seed(sql)
    sql(
        "INSERT INTO api_key_audit_logs (action, actor, created_at)"
        " SELECT 'auth_failure', 'ip', now() - interval '401 days' - g * interval '1 hour'"
        " FROM generate_series(1, 30) g"
    )
    assert run_retention(client)["deleted"]["api_key_audit_logs"] == 30
    assert_counters_exact(sql)


def test_concurrent_writers_are_all_counted(database_url, sql):
    (u1, _), (k1, _) = seed(sql, days=1)

    def write():
        conn = psycopg2.connect(database_url)
        try:
            for _ in range(40):
                with conn, conn.cursor() as cur:  # one transaction per row, as on the request path
                    cur.execute("INSERT INTO api_key_audit_logs (action, actor) VALUES ('auth_failure', 'ip')")
                    cur.execute(
                        "INSERT INTO api_key_audit_logs (user_id, api_key_id, action, actor)"
                        " VALUES (%s, %s, 'create', 'user')",
                        (u1, k1),
                    )
        finally:
            conn.close()

    writers = [threading.Thread(target=write) for _ in range(6)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert sql("SELECT count(*) AS n FROM api_key_audit_logs WHERE actor = 'ip'") == [{"n": 240}]
    assert_counters_exact(sql)


@pytest.fixture
def database_before_counters(services, tmp_path):
    """A fresh database migrated up to, not including, 0007; yields (Database, sql runner)."""
    name = "mig_counts"
    admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    database = Database(url_for_database(services["pg_url"], name))
    for path in sorted(migrations.SQL_DIR.glob("*.sql")):
        if path.name < "0007":
            shutil.copy(path, tmp_path / path.name)
    migrations.migrate(database, sql_dir=tmp_path)
    conn = psycopg2.connect(database.url, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True

    def run(statement, params=None):
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield database, run
    conn.close()
    admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_upgrade_backfills_counters_from_existing_rows(database_before_counters, tmp_path):
    database, sql = database_before_counters
    seed(sql)
    shutil.copy(migrations.SQL_DIR / "0007_audit_log_counts.sql", tmp_path)  # the upgrade, not the ones after it
    assert migrations.migrate(database, sql_dir=tmp_path) == ["0007_audit_log_counts.sql"]
    assert_counters_exact(sql)
    sql("INSERT INTO api_key_audit_logs (action, actor, created_at) VALUES ('create', 'a', %s)", (datetime.now(UTC),))
    sql("DELETE FROM api_key_audit_logs WHERE created_at < %s", (datetime.now(UTC) - timedelta(days=2),))
    assert_counters_exact(sql)
