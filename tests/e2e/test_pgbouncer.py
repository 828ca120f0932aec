"""The gateway, its clocks and its migrations behind a real PgBouncer in transaction mode (issue 16 #3)."""

import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
import requests

from ops_gateway.core import migrations
from ops_gateway.core.connection_pool import Database
from ops_gateway.core.prepared import Prepared
from ops_gateway.core.session_settings import PoolerError
from tests.conftest import admin_execute
from tests.e2e.clocks import clock_env, running_clocks, scheduled_runs_by_tick
from tests.e2e.gateway_calls import complete
from tests.e2e.pgbouncer import POOLED_JOBS, TICK_SECONDS
from tests.e2e.servers import ROOT
from tests.helpers import ADMIN, bearer
from tests.helpers import create_user as create_user_in_app

_MIGRATE = (
    "import sys; from ops_gateway.core import migrations; from ops_gateway.core.connection_pool import Database;"
    " print(','.join(migrations.migrate(Database(sys.argv[1]))))"
)


def advisory_locks(sql):
    """Advisory locks held anywhere on the server."""
    return sql("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'")[0]["n"]


def test_gateway_serves_completions_through_pgbouncer_with_its_settings_in_force(gateway, bounced_url, sql):
    database = sql("SELECT current_database() AS name")[0]["name"]
    sql(f"ALTER DATABASE {database} SET timezone = 'America/New_York'")  # a server default other than UTC
    server = gateway(workers=2, DATABASE_URL=bounced_url, DB_PREPARED_STATEMENTS="false")
    body = {"email": "u@example.com", "credits": "5", "plan": "team"}
    user = requests.post(f"{server.url}/admin/users", json=body, headers=ADMIN, timeout=10)
    assert user.json()["user"]["created_at"].endswith("+00:00"), user.json()["user"]
    headers = bearer(user.json()["api_key"])
    results = [complete(server.url, headers) for _ in range(10)] + [complete(server.url, headers, stream=True)]
    assert [status for status, _ in results] == [200] * 11
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
    conn = Database(bounced_url).connect()  # a connection as the gateway opens them
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('statement_timeout') AS timeout, now()::text AS now")
            row = cur.fetchone()
        assert row["timeout"] == "5s" and row["now"].endswith("+00"), row
    finally:
        conn.close()
    assert sql("SELECT count(*) AS n FROM usage_records")[0]["n"] == 11


def test_prepared_statements_behind_pgbouncer_stop_start_up_naming_the_setting(gateway, bounced_url, tmp_path):
    with pytest.raises(RuntimeError, match="exited"):
        gateway(workers=1, DATABASE_URL=bounced_url, DB_PREPARED_STATEMENTS="true")
    log = "".join(path.read_text(errors="replace") for path in tmp_path.glob("gateway-*.log"))
    assert "DB_PREPARED_STATEMENTS=false" in log and "pool_mode=transaction" in log


def test_prepared_statements_app_refuses_to_build_behind_pgbouncer(make_app, bounced_url):
    with pytest.raises(PoolerError, match="DB_PREPARED_STATEMENTS=false"):
        make_app(DATABASE_URL=bounced_url, DB_PREPARED_STATEMENTS=True)


def test_shared_sessions_met_at_run_time_turn_prepared_statements_off_without_failing(make_app, bounced_url):
    client = make_app(DATABASE_URL=bounced_url, DB_PREPARED_STATEMENTS=False).test_client()
    _, key = create_user_in_app(client, credits="1.00")
    Prepared.enabled = True  # as if the start-up probe had missed the pooler
    holder = psycopg2.connect(bounced_url)
    try:
        assert client.get("/user/balance", headers=bearer(key)).status_code == 200  # prepared on server A
        holder.cursor().execute("SELECT 1")  # an open transaction pins server A
        assert client.get("/user/balance", headers=bearer(key)).status_code == 200  # server B lacks it
        assert Prepared.enabled is False
    finally:
        holder.close()
        Prepared.enabled = False


def test_migrations_from_two_processes_through_pgbouncer_apply_each_file_once(services, pgbouncer, sql):
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin_execute(services["pg_url"], f"CREATE DATABASE {name}")
    try:
        url = pgbouncer.url(name)
        starters = [
            subprocess.Popen([sys.executable, "-c", _MIGRATE, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [starter.communicate(timeout=60)[0] for starter in starters]
        assert [starter.returncode for starter in starters] == [0, 0]
        applied = [
            migration for output in outputs for migration in output.split() for migration in migration.split(",")
        ]
        assert sorted(applied) == [file_name for file_name, _, _ in migrations.migration_files()]
        assert advisory_locks(sql) == 0
        assert migrations.migrate(Database(url)) == []  # a third starter finds nothing to do, and no lock in its way
    finally:
        admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow  # three whole clock ticks
def test_two_clocks_through_pgbouncer_run_each_job_once_per_tick_and_leave_no_lock(
    tmp_path, test_settings, upstream, bounced_url, sql, make_app
):
    env = clock_env({**test_settings, "DATABASE_URL": bounced_url}, upstream, tmp_path / "backups", TICK_SECONDS)
    env.update(DB_PREPARED_STATEMENTS="false", BACKUP_VERIFICATION_INTERVAL_SECONDS="0")
    with running_clocks(env, tmp_path) as (clocks, logs):
        time.sleep(3 * TICK_SECONDS + 1)
        assert [clock.poll() for clock in clocks] == [None, None], [log.read_text() for log in logs]

    succeeded, _, _ = scheduled_runs_by_tick(sql)
    assert {job.name: succeeded[job.name] for job in POOLED_JOBS if len(succeeded[job.name]) < 2} == {}, succeeded

    time.sleep(TICK_SECONDS / 2)  # a lease cut short by the shutdown expires within half a tick
    assert sql("SELECT job FROM job_locks WHERE expires_at > now()") == []
    assert advisory_locks(sql) == 0
    client = make_app(DATABASE_URL=bounced_url, DB_PREPARED_STATEMENTS=False).test_client()
    for job in POOLED_JOBS:
        assert client.post(f"/admin/jobs/{job.name}/run", headers=ADMIN).status_code == 200, job.name
