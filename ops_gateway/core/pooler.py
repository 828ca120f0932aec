"""What every database session must give the gateway, made to hold behind a transaction-mode pooler.

PgBouncer in transaction mode refuses startup ``options`` and lends each transaction whichever
server connection is free, so nothing a client sets on its session reaches its next transaction.
Hence, checked once per process at start-up:

- ``statement_timeout`` and ``timezone`` are defaults of the gateway's role in its database
  (``ALTER ROLE CURRENT_USER IN DATABASE ... SET``), set here when a session shows other values.
  Every server connection opened afterwards starts with them, directly or through any pooler, and
  the hot path spends no round trip on them.
- Prepared statements (``DB_PREPARED_STATEMENTS``) need a client connection to keep its server
  session. A statement prepared on one connection that another connection can see (or that its
  own connection loses) proves sessions are shared: start-up stops, naming the setting.
"""

import logging
import secrets

import psycopg2
from psycopg2 import sql

from ops_gateway.core.prepared import SHARED_SESSIONS_MESSAGE

logger = logging.getLogger("ops_gateway.db")

UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
_READ_SETTINGS = (
    "SELECT setting::int AS statement_timeout_ms, current_setting('TimeZone') AS timezone,"
    " current_database() AS database FROM pg_settings WHERE name = 'statement_timeout'"
)


class PoolerError(RuntimeError):
    """Database sessions cannot give the gateway what it needs; the message names what to change."""


def session_settings(database):
    """statement_timeout (ms), timezone and database name as one pooled session sees them."""
    with database.connection() as conn, conn.cursor() as cur:
        cur.execute(_READ_SETTINGS)
        found = dict(cur.fetchone())
        conn.commit()
    return found


def settings_off(found, statement_timeout_ms):
    """The settings a session shows wrongly, as {name: (found, wanted)}."""
    off = {}
    if found["statement_timeout_ms"] != statement_timeout_ms:
        off["statement_timeout"] = (found["statement_timeout_ms"], statement_timeout_ms)
    if found["timezone"] not in UTC_NAMES:
        off["timezone"] = (found["timezone"], "UTC")
    return off


def role_defaults_sql(database_name, statement_timeout_ms):
    """The statements that make statement_timeout and timezone defaults of the current role in the database."""
    alter = sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET {} = {}")
    name = sql.Identifier(database_name)
    return [
        alter.format(name, sql.SQL("statement_timeout"), sql.Literal(statement_timeout_ms)),
        alter.format(name, sql.SQL("timezone"), sql.Literal("UTC")),
    ]


def ensure_session_settings(database):
    """Make statement_timeout and timezone role defaults when a session shows other values.

    Ordinary roles may set their own defaults; when even that is refused, start-up stops with
    the statements for the database owner to run. Server connections a pooler opened before the
    defaults were set keep the old values until it replaces them: a warning says so.
    """
    wanted_ms = database.statement_timeout_ms
    found = session_settings(database)
    if not settings_off(found, wanted_ms):
        return
    statements = role_defaults_sql(found["database"], wanted_ms)
    with database.connection() as conn:
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
            conn.commit()
        except psycopg2.errors.InsufficientPrivilege as exc:
            listed = "; ".join(statement.as_string(conn) for statement in statements)
            raise PoolerError(f"cannot set this role's session defaults; as the database owner run: {listed}") from exc
    logger.info("set role defaults", extra={"statement_timeout_ms": wanted_ms, "timezone": "UTC"})
    database.reset()  # pooled sessions opened before the defaults keep the old values
    still_off = settings_off(session_settings(database), wanted_ms)
    if still_off:
        logger.warning(
            "role defaults set, but a pooled server connection opened earlier still has %s; it keeps them"
            " until the pooler replaces it (PgBouncer: RECONNECT on the admin console, or server_lifetime)",
            still_off,
        )


def sessions_are_shared(database):
    """Whether a statement prepared on one client connection is seen from another or lost by its own.

    A pooler lends an idle server connection to the next client (PgBouncer: last in, first out),
    so the second connection meets the first one's session. A direct or session-pooled
    connection never does, and never loses what it prepared.
    """
    name = f"gw_probe_{secrets.token_hex(6)}"
    with database.connection() as first:
        first.autocommit = True
        try:
            with first.cursor() as cur:
                cur.execute(f"PREPARE {name} AS SELECT 1")
            second = database.connect()
            try:
                with second.cursor() as cur:
                    cur.execute("SELECT count(*) AS seen FROM pg_prepared_statements WHERE name = %s", (name,))
                    if cur.fetchone()["seen"]:
                        cur.execute(f"DEALLOCATE {name}")
                        second.commit()
                        return True
            finally:
                second.close()
            try:
                with first.cursor() as cur:
                    cur.execute(f"DEALLOCATE {name}")
            except psycopg2.errors.InvalidSqlStatementName:
                return True
            return False
        finally:
            first.autocommit = False


def check_sessions(database, prepared_statements):
    """Start-up: settings made effective, and prepared statements refused where sessions are shared."""
    ensure_session_settings(database)
    if prepared_statements and sessions_are_shared(database):
        raise PoolerError(SHARED_SESSIONS_MESSAGE)
