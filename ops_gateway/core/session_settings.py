"""What every database session must give the gateway, made to hold behind a transaction-mode pooler.

PgBouncer in transaction mode refuses startup ``options`` and lends each transaction whichever
server connection is free, so nothing a client sets on its session reaches its next transaction.
Hence, checked once per process at start-up:

- ``statement_timeout`` is a default of the gateway's role in its database (``ALTER ROLE
  CURRENT_USER IN DATABASE ... SET``), set here when a session shows another value. Every server
  connection opened afterwards starts with it, directly or through any pooler, and the hot path
  spends no round trip on it. (The timezone is SET per connection instead, see
  ``connection_pool.Database.connect``: PgBouncer tracks it per client and imposes its own cached value on
  server connections, whatever the role's default.) Both are checked here.
- Prepared statements (``DB_PREPARED_STATEMENTS``) need a client connection to keep its server
  session. A statement prepared on one connection that another connection can see (or that its
  own connection loses) proves sessions are shared: start-up stops, naming the setting.
"""

import logging
import secrets

import psycopg2
from psycopg2 import sql

from ops_gateway.core.connection_pool import UTC_NAMES
from ops_gateway.core.prepared import SHARED_SESSIONS_MESSAGE

logger = logging.getLogger("ops_gateway.db")

ROLE_DEFAULTS_LOCK_ID = 0x6F70735F726F6C65  # "ops_role": one start-up at a time sets role defaults
STALE_SESSIONS_ENDED = 20  # more idle server connections than a pooler usually keeps per database
_READ_SETTINGS = (
    "SELECT setting::int AS statement_timeout_ms, current_setting('TimeZone') AS timezone,"
    " current_database() AS database FROM pg_settings WHERE name = 'statement_timeout'"
)


class PoolerError(RuntimeError):
    """Database sessions cannot give the gateway what it needs; the message names what to change."""


def session_settings(database, end_if_off=False):
    """statement_timeout (ms), timezone and database name as one pooled session sees them.

    With ``end_if_off``, a session showing other values than wanted ends itself
    (``pg_terminate_backend`` of its own backend, in its own transaction: no one else's work is
    on it), so the pooler opens a fresh one, which starts with the role defaults.
    """
    with database.connection() as conn, conn.cursor() as cur:
        cur.execute(_READ_SETTINGS)
        found = dict(cur.fetchone())
        if end_if_off and settings_off(found, database.statement_timeout_ms):
            try:
                cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except psycopg2.OperationalError:
                pass  # the expected end; the pool discards the closed connection
            return found
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
    """The statements that make statement_timeout a default of the current role in the database."""
    alter = sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET statement_timeout = {}")
    return [alter.format(sql.Identifier(database_name), sql.Literal(statement_timeout_ms))]


def set_role_defaults(database, database_name):
    """Make statement_timeout a role default; None when done, else the statement the owner must run.

    Processes starting together (a deploy's workers and instances) take turns: two concurrent
    ALTER ROLE ... SET of the same role and database collide in the catalogue (a unique violation
    that failed worker boots). The lock is transaction-scoped, so it cannot leak through a pooler.
    """
    with database.connection() as conn:
        statements = role_defaults_sql(database_name, database.statement_timeout_ms)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (ROLE_DEFAULTS_LOCK_ID,))
                for statement in statements:
                    cur.execute(statement)
            conn.commit()
        except psycopg2.errors.InsufficientPrivilege:
            return "; ".join(statement.as_string(conn) for statement in statements)
    logger.info("set role default", extra={"statement_timeout_ms": database.statement_timeout_ms})
    return None


def ensure_session_settings(database):
    """Make statement_timeout a role default when a session shows another value; check the timezone too.

    Ordinary roles may set their own defaults. Sessions opened before them (a pooler's idle
    server connections above all) are ended as they are met, up to ``STALE_SESSIONS_ENDED``.
    Start-up stops when the settings are still off and could not be set (the message lists the
    statements for the database owner); when they were set, a warning names what still lags.
    """
    wanted_ms = database.statement_timeout_ms
    found = session_settings(database)
    if not settings_off(found, wanted_ms):
        return
    refused = set_role_defaults(database, found["database"])
    database.reset()
    for _ in range(STALE_SESSIONS_ENDED):
        found = session_settings(database, end_if_off=True)
        if not settings_off(found, wanted_ms):
            return
    if refused:
        raise PoolerError(f"sessions run without statement_timeout/timezone; as the database owner run: {refused}")
    logger.warning(
        "role default set, but sessions opened before still show %s; they keep them until the pooler"
        " replaces them (PgBouncer: RECONNECT on the admin console, or server_lifetime)",
        settings_off(found, wanted_ms),
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
