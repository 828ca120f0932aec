"""backup_verification: a real pg_dump restored into a scratch database and counted; alerts on failure."""

import json
import os
import time

import pytest
from psycopg2.extensions import parse_dsn

from ops_gateway.core import db
from ops_gateway.maintenance import backup
from tests.conftest import admin_execute
from tests.helpers import ADMIN

WEBHOOK = "http://hooks.test/alerts"


@pytest.fixture
def seeded(sql):
    """A few rows in every key table."""
    sql("INSERT INTO users (id, email, plan) VALUES (1, 'a@example.com', 'trial'), (2, 'b@example.com', 'dev')")
    sql(
        "INSERT INTO api_keys (user_id, name, key_hash, prefix, last4)"
        " VALUES (1, 'k', 'h1', 'gw_live', '1234'), (2, 'k', 'h2', 'gw_live', '5678')"
    )
    sql(
        "INSERT INTO credit_transactions (user_id, amount, balance_after, kind, reason, actor)"
        " VALUES (1, 5, 5, 'grant', 'opening', 'admin')"
    )
    sql(
        "INSERT INTO usage_records (request_id, user_id, model, status)"
        " SELECT 'r' || g, 1, 'm', 'success' FROM generate_series(1, 7) g"
    )
    sql("INSERT INTO api_key_audit_logs (action, actor) VALUES ('create', 'admin')")
    return {"users": 2, "api_keys": 2, "credit_transactions": 1, "usage_records": 7, "api_key_audit_logs": 1}


def run_backup(client):
    response = client.post("/admin/jobs/backup_verification/run", headers=ADMIN)
    assert response.status_code == 200
    return response.get_json()


def take_dump(app, directory):
    """A real dump with its manifest, without the (slower) restore."""
    with app.app_context():
        return directory / backup.take_dump(db.get_database(), directory)["file"]


def scratch_databases(sql):
    return sql("SELECT datname FROM pg_database WHERE datname LIKE '%\\_verify\\_%'")


def test_backup_is_taken_restored_and_counted(make_app, sql, tmp_path, seeded):
    client = make_app(BACKUP_DIR=str(tmp_path)).test_client()
    run = run_backup(client)
    assert run["status"] == "success", run["error"]
    details = run["details"]
    dump = tmp_path / details["file"]
    assert dump.exists() and dump.stat().st_size > 0 and details["dump"]["bytes"] == dump.stat().st_size
    assert details["compared_with"] == "manifest"
    assert details["expected_counts"] == details["restored_counts"] == seeded
    assert json.loads((tmp_path / f"{dump.name}.json").read_text())["counts"] == seeded
    assert scratch_databases(sql) == []  # the scratch copy is dropped after counting
    assert not list(tmp_path.glob("*.partial")) and details["pruned"] == []


def test_verify_mode_checks_the_newest_existing_file(make_app, sql, tmp_path, seeded):
    app = make_app(BACKUP_DIR=str(tmp_path), BACKUP_MODE="verify")
    take_dump(app, tmp_path)
    sql("INSERT INTO users (id, email, plan) VALUES (3, 'c@example.com', 'trial')")  # the live database moves on
    run = run_backup(app.test_client())
    assert run["status"] == "success", run["error"]
    assert "dump" not in run["details"] and len(list(tmp_path.glob("*.dump"))) == 1
    assert run["details"]["restored_counts"]["users"] == 2  # what the file holds, checked against its manifest


def test_a_file_made_elsewhere_is_compared_with_the_live_database(make_app, tmp_path, seeded):
    app = make_app(BACKUP_DIR=str(tmp_path), BACKUP_MODE="verify")
    backup.manifest_path(take_dump(app, tmp_path)).unlink()
    run = run_backup(app.test_client())
    assert run["status"] == "success", run["error"]
    assert run["details"]["compared_with"] == "live database"
    assert run["details"]["restored_counts"] == seeded


def test_restored_counts_that_differ_fail_and_alert(make_app, sql, tmp_path, seeded, requests_mock):
    requests_mock.post(WEBHOOK, text="ok")
    app = make_app(BACKUP_DIR=str(tmp_path), BACKUP_MODE="verify", ALERT_WEBHOOK_URL=WEBHOOK)
    manifest = backup.manifest_path(take_dump(app, tmp_path))
    recorded = json.loads(manifest.read_text())
    recorded["counts"]["users"] = 3
    manifest.write_text(json.dumps(recorded))
    run = run_backup(app.test_client())
    assert run["status"] == "failed"
    assert "users expected 3 restored 2" in run["error"]
    alert = sql("SELECT rule, status, severity FROM alerts")[0]
    assert alert == {"rule": "backup_verification_failed", "status": "firing", "severity": "critical"}
    assert "[FIRING]" in requests_mock.last_request.json()["text"]


def test_unreachable_backup_dir_records_failed_with_the_error_and_alerts(make_app, sql, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    run = run_backup(make_app(BACKUP_DIR=str(blocker / "backups")).test_client())
    assert run["status"] == "failed"
    assert run["error"].startswith(("NotADirectoryError", "FileExistsError"))
    stored = sql("SELECT status, error FROM job_runs WHERE id = %s", (run["id"],))[0]
    assert stored["status"] == "failed" and stored["error"] == run["error"]
    assert sql("SELECT rule FROM alerts WHERE status = 'firing'") == [{"rule": "backup_verification_failed"}]


def test_a_stale_newest_backup_fires_an_alert_and_a_fresh_one_resolves_it(make_app, sql, tmp_path, seeded):
    app = make_app(BACKUP_DIR=str(tmp_path), BACKUP_MODE="verify")
    dump = take_dump(app, tmp_path)
    two_days_ago = time.time() - 48 * 3600
    os.utime(dump, (two_days_ago, two_days_ago))
    run = run_backup(app.test_client())
    assert run["status"] == "success" and run["details"]["age_hours"] > 26
    stale = sql("SELECT status, value, threshold FROM alerts WHERE rule = 'backup_stale'")[0]
    assert stale["status"] == "firing" and stale["value"] > 47 and stale["threshold"] == 26
    os.utime(dump)  # a fresh file
    run_backup(app.test_client())
    assert sql("SELECT status FROM alerts WHERE rule = 'backup_stale'") == [{"status": "resolved"}]


def test_only_the_newest_dumps_are_kept(tmp_path):
    for age, name in enumerate(["c", "b", "a"]):
        (tmp_path / f"{name}.dump").write_text(name)
        (tmp_path / f"{name}.dump.json").write_text("{}")
        os.utime(tmp_path / f"{name}.dump", (time.time() - age * 60, time.time() - age * 60))
    assert backup.prune(tmp_path, 1) == ["b.dump", "a.dump"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.dump", "c.dump.json"]
    assert backup.prune(tmp_path, 0) == []


def test_stale_scratch_databases_from_a_crash_are_dropped(app, sql, database_url, services):
    name = parse_dsn(database_url)["dbname"][:40] + backup.SCRATCH_MARKER + "1"
    admin_execute(services["pg_url"], f"CREATE DATABASE {name}")
    with app.app_context():
        assert backup.drop_stale_scratch_databases(db.get_database()) == [name]
    assert scratch_databases(sql) == []
