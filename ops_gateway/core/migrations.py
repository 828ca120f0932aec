"""Apply the numbered SQL files in ``sql/`` once each, in order, under an advisory lock.

Each file runs in its own transaction together with its ``schema_migrations`` row and the lock,
so a failed file leaves nothing behind and no lock outlives its transaction. An applied file
whose checksum changed stops start-up: history is never rewritten silently.
"""

import hashlib
import logging
import re
from contextlib import contextmanager
from pathlib import Path

from ops_gateway.core.connection_pool import committed

logger = logging.getLogger("ops_gateway.db")

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
MIGRATION_LOCK_ID = 7_240_001  # any constant shared by every gateway process
FILE_PATTERN = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """The database's applied history disagrees with the files on disk."""


def migration_files(sql_dir=SQL_DIR):
    """The migration files on disk as (name, sql text, checksum), in order."""
    files = []
    for path in sorted(sql_dir.iterdir()):
        if FILE_PATTERN.match(path.name):
            text = path.read_text()
            files.append((path.name, text, hashlib.sha256(text.encode()).hexdigest()))
    return files


def _applied(cur):
    cur.execute("SELECT name, checksum FROM schema_migrations")
    return {row["name"]: row["checksum"] for row in cur.fetchall()}


def migrate(database, sql_dir=SQL_DIR):
    """Apply pending migrations; return the names applied by this call.

    The lock is transaction-scoped (``pg_advisory_xact_lock``), taken again for each file and
    released by its commit: behind a transaction-mode pooler a session lock would stay on a
    server connection the pooler lends to others. Under the lock each file checks again whether
    another process applied it meanwhile, so concurrent starters wait, then skip what is done.
    """
    conn = database.connect()
    applied_now = []
    try:
        with _locked(conn) as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = _applied(cur)
        for name, text, checksum in migration_files(sql_dir):
            if name in applied:
                if applied[name] != checksum:
                    raise MigrationError(f"applied migration {name} was edited; add a new file instead")
                continue
            with _locked(conn) as cur:
                cur.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (name,))
                if cur.fetchone() is not None:
                    continue
                cur.execute(text)
                cur.execute("INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)", (name, checksum))
            applied_now.append(name)
            logger.info("applied migration", extra={"migration": name})
    finally:
        conn.close()
    return applied_now


@contextmanager
def _locked(conn):
    """A cursor in one transaction holding the migration lock, without a statement timeout; committed at the end."""
    with committed(conn) as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        yield cur


def pending(cur, sql_dir=SQL_DIR):
    """Names of migration files not yet applied (used by /health/ready)."""
    cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    if not cur.fetchone()["present"]:
        return [name for name, _, _ in migration_files(sql_dir)]
    applied = _applied(cur)
    return [name for name, _, _ in migration_files(sql_dir) if name not in applied]
