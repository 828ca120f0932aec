"""PostgreSQL access for requests and jobs: a connection per block, borrowed from the process's pool.

A request borrows a connection for each ``transaction()`` or ``statement()`` block and gives it
back at the block's end, so it never holds one while it waits on upstream or on a slow client.
SQL is always parameterised; rows come back as dicts. The pool itself is ``core/connection_pool.py``,
prepared hot-path statements ``core/prepared.py``; their names are re-exported here for callers.
"""

import logging
from contextlib import contextmanager

from flask import current_app, g

from ops_gateway.core import session_settings
from ops_gateway.core.connection_pool import (
    UNAVAILABLE_ERRORS,
    Database,
    GatewayConnection,
    PoolExhausted,
    TimedCursor,
    WaitingPool,
    committed,
)
from ops_gateway.core.prepared import Prepared

logger = logging.getLogger("ops_gateway.db")

__all__ = [
    "UNAVAILABLE_ERRORS",
    "Database",
    "GatewayConnection",
    "PoolExhausted",
    "Prepared",
    "TimedCursor",
    "WaitingPool",
    "get_database",
    "init_app",
    "release_request_connection",
    "set_local",
    "statement",
    "transaction",
]


def get_database():
    """The app's Database object."""
    return current_app.extensions["ops_gateway.db"]


@contextmanager
def _block_connection():
    """The connection for one block: the outermost block borrows it and gives it back at its end.

    Nested blocks share it. A request therefore holds a connection only while it talks to
    Postgres, never while it waits on upstream or on a slow client.
    """
    conn = g.get("db_conn")
    if conn is not None:
        yield conn
        return
    with get_database().connection() as conn:
        g.db_conn = conn
        try:
            yield conn
        finally:
            g.pop("db_conn", None)


@contextmanager
def transaction():
    """A cursor inside one transaction on a borrowed connection: commit or roll back."""
    with _block_connection() as conn, committed(conn) as cur:
        yield cur


@contextmanager
def statement():
    """A cursor for exactly one statement that commits by itself: one round trip, no BEGIN/COMMIT.

    For the request path's single reads and single-row updates; statements that must commit
    together use ``transaction()``.
    """
    with _block_connection() as conn:
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            if not conn.closed:
                conn.autocommit = False


LOCAL_SETTINGS = frozenset({"statement_timeout", "lock_timeout"})


def set_local(cur, setting, value):
    """``SET LOCAL`` a timeout (``statement_timeout``, ``lock_timeout``) for the rest of the cursor's transaction."""
    if setting not in LOCAL_SETTINGS:
        raise ValueError(f"{setting} is not a setting set here")
    cur.execute(f"SET LOCAL {setting} = %s", (value,))


def release_request_connection(exc=None):
    """Teardown hook: a block cut short (a generator never resumed) still gives its connection back."""
    conn = g.pop("db_conn", None)
    if conn is not None:
        broken = conn.closed or isinstance(exc, UNAVAILABLE_ERRORS)
        get_database().putconn(conn, broken=broken)


def init_app(app, database):
    """Attach the Database to the app, check its sessions, and return connections after every request.

    A session check that finds the database unreachable is logged and skipped (``/health/ready``
    reports it); one that finds sessions unusable stops start-up (``session_settings.PoolerError``).
    """
    TimedCursor.slow_query_ms = app.config["SLOW_QUERY_MS"]
    Prepared.enabled = app.config["DB_PREPARED_STATEMENTS"]
    app.extensions["ops_gateway.db"] = database
    app.teardown_appcontext(release_request_connection)
    try:
        session_settings.check_sessions(database, Prepared.enabled)
    except UNAVAILABLE_ERRORS as exc:
        logger.error("database unreachable at start-up; session checks skipped: %s", exc.__class__.__name__)
