"""The migration runner: ordered, recorded, tamper-evident, safe under concurrent starts."""

import threading

import pytest

from ops_gateway.core import migrations
from ops_gateway.core.db import Database
from tests.conftest import admin_execute, url_for_database


@pytest.fixture
def empty_database(services):
    name = "mig_empty"
    admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    yield Database(url_for_database(services["pg_url"], name))
    admin_execute(services["pg_url"], f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def applied_names(database):
    with database.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM schema_migrations ORDER BY name")
        return [row["name"] for row in cur.fetchall()]


def test_applies_every_file_once_in_order(empty_database):
    names = [name for name, _, _ in migrations.migration_files()]
    assert migrations.migrate(empty_database) == names
    assert migrations.migrate(empty_database) == []
    assert applied_names(empty_database) == names


def test_concurrent_starters_apply_each_file_exactly_once(empty_database):
    results = []

    def start():
        results.append(migrations.migrate(Database(empty_database.url)))

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applied = [name for names in results for name in names]  # the lock is per file: starters may share the work
    assert sorted(applied) == [name for name, _, _ in migrations.migration_files()]


def test_edited_applied_file_refuses_to_start(empty_database, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);")
    migrations.migrate(empty_database, sql_dir=tmp_path)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id bigint);")
    with pytest.raises(migrations.MigrationError, match="0001_first.sql"):
        migrations.migrate(empty_database, sql_dir=tmp_path)


def test_failed_file_leaves_nothing_behind(empty_database, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(Exception, match="no_such_function"):
        migrations.migrate(empty_database, sql_dir=tmp_path)
    assert applied_names(empty_database) == ["0001_ok.sql"]
    with empty_database.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('half') IS NULL AS gone")
        assert cur.fetchone()["gone"]


def test_cli_migrate_reports_nothing_pending(app):
    result = app.test_cli_runner().invoke(args=["migrate"])
    assert result.exit_code == 0
    assert "none pending" in result.output
