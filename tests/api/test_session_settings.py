"""Start-up session settings (core/session_settings.py) when many processes start at once."""

from concurrent.futures import ThreadPoolExecutor

from ops_gateway.core import session_settings
from ops_gateway.core.db import Database


def test_processes_starting_together_set_the_role_default_without_colliding(database_url, sql):
    """A deploy starts many workers at once on a database without the default: each sets it, in turn."""
    [row] = sql("SELECT current_database() AS name")
    sql(f'ALTER ROLE CURRENT_USER IN DATABASE "{row["name"]}" RESET statement_timeout')
    databases = [Database(database_url) for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            refused = list(
                pool.map(lambda database: session_settings.set_role_defaults(database, row["name"]), databases)
            )
    finally:
        for database in databases:
            database.reset()
    assert refused == [None] * 8
    [setting] = sql(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    )
    assert any(entry.startswith("statement_timeout=") for entry in setting["setconfig"])
