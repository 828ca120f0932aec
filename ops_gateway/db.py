"""PostgreSQL access: one psycopg2 pool per process, one borrowed connection per request.

The pool is created lazily and re-created when the process id changes, so a pool made before
gunicorn forks is never shared by two workers. SQL is always parameterised; rows come back
as dicts.
"""

import logging
import os
import re
import select
import threading
import time
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
import psycopg2.pool
from flask import current_app, g
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

logger = logging.getLogger("ops_gateway.db")

# Errors meaning "the database is not reachable right now" (mapped to 503, never 500).
UNAVAILABLE_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.pool.PoolError)


class TimedCursor(psycopg2.extras.RealDictCursor):
    """Dict cursor that logs statements slower than the configured threshold."""

    slow_query_ms = 200
    on_slow_query = None

    def execute(self, query, vars=None):
        """Run the statement, timing it."""
        started = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if elapsed_ms >= self.slow_query_ms:
                statement = query.as_string(self) if hasattr(query, "as_string") else query
                statement = statement.decode() if isinstance(statement, bytes) else statement
                logger.warning(
                    "slow query",
                    extra={"duration_ms": round(elapsed_ms, 1), "statement": " ".join(statement.split())[:300]},
                )
                if TimedCursor.on_slow_query:
                    TimedCursor.on_slow_query(elapsed_ms)


class GatewayConnection(psycopg2.extensions.connection):
    """A connection that remembers which statements it has prepared (see ``Prepared``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared = set()


class Prepared:
    """A hot-path statement parsed and planned once per connection (PREPARE), then EXECUTEd.

    Planning the key lookup and the settlement cost Postgres about 0.3 ms of CPU each, more
    than running them. Written with ``%(name)s`` parameters like any other statement; with
    ``DB_PREPARED_STATEMENTS=false`` (PgBouncer in transaction mode) it runs as plain SQL.
    """

    enabled = True
    _PARAMETER = re.compile(r"%\((\w+)\)s")

    def __init__(self, name, query):
        self.name = name
        self.query = query
        self.parameters = list(dict.fromkeys(self._PARAMETER.findall(query)))
        numbers = {parameter: index for index, parameter in enumerate(self.parameters, 1)}
        positional = self._PARAMETER.sub(lambda match: f"${numbers[match.group(1)]}", query)
        self._prepare = f"PREPARE {name} AS {positional}"
        self._execute = f"EXECUTE {name} ({', '.join(['%s'] * len(self.parameters))})"

    def execute(self, cur, params):
        """Run the statement with ``params`` (a dict) on ``cur``."""
        conn = cur.connection
        if not (self.enabled and isinstance(conn, GatewayConnection)):
            return cur.execute(self.query, params)
        if self.name not in conn.prepared:
            cur.execute(self._prepare)
            conn.prepared.add(self.name)
        return cur.execute(self._execute, [params[parameter] for parameter in self.parameters])


class _ReusingPool(psycopg2.pool.ThreadedConnectionPool):
    """Opens connections on demand and keeps returned ones for reuse, up to maxconn.

    psycopg2 closes every returned connection beyond ``minconn``; with minconn=0 each request
    paid for a new server connection (a backend fork, several milliseconds).
    """

    def __init__(self, maxconn, *args, **kwargs):
        super().__init__(0, maxconn, *args, **kwargs)
        self.minconn = maxconn  # idle connections are kept while fewer than this are pooled


def _went_away(conn):
    """Whether the server closed (or wrote to) an idle connection: a restart or termination.

    An idle connection has nothing to read; anything readable is the server's goodbye or EOF.
    One non-blocking poll, no round trip.
    """
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class Database:
    """A lazily created, fork-aware ThreadedConnectionPool for one database URL."""

    def __init__(self, url, maxconn=12, statement_timeout_ms=5000, connect_timeout_s=2):
        self.url = url
        self.maxconn = maxconn
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self._pool = None
        self._pid = None
        self._lock = threading.Lock()
        self._borrowed = 0

    def connect(self, **extra):
        """Open a fresh connection outside the pool (migrations, CLI, scheduler locks)."""
        return psycopg2.connect(self.url, **self._connect_kwargs(), **extra)

    def _connect_kwargs(self):
        # keepalives make a vanished server fail fast instead of hanging a request.
        return {
            "connect_timeout": self.connect_timeout_s,
            "options": f"-c statement_timeout={self.statement_timeout_ms} -c timezone=UTC",
            "cursor_factory": TimedCursor,
            "connection_factory": GatewayConnection,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 2,
            "keepalives_count": 2,
        }

    def _get_pool(self):
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = _ReusingPool(self.maxconn, self.url, **self._connect_kwargs())
                    self._pid = os.getpid()
                    self._borrowed = 0
        return self._pool

    def getconn(self):
        """Borrow a connection; the caller must hand it back with ``putconn``."""
        pool = self._get_pool()
        conn = pool.getconn()
        for _ in range(self.maxconn):  # pooled connections the server dropped while idle are replaced
            if not _went_away(conn):
                break
            pool.putconn(conn, close=True)
            conn = pool.getconn()
        with self._lock:
            self._borrowed += 1
        return conn

    def putconn(self, conn, broken=False):
        """Return a connection, discarding it when broken or left mid-transaction."""
        pool = self._get_pool()
        with self._lock:
            self._borrowed = max(0, self._borrowed - 1)
        try:
            if not (conn.closed or broken) and conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
                conn.rollback()
            pool.putconn(conn, close=bool(conn.closed or broken))
        except psycopg2.Error:
            pool.putconn(conn, close=True)
        except psycopg2.pool.PoolError:
            conn.close()  # borrowed from a pool that has since been reset: just drop it

    @contextmanager
    def connection(self):
        """Borrow a connection for a block, always returning it."""
        conn = self.getconn()
        broken = False
        try:
            yield conn
        except UNAVAILABLE_ERRORS:
            broken = True
            raise
        finally:
            self.putconn(conn, broken=broken)

    def discard_idle(self):
        """Close idle pooled connections (after the server went away they are all dead)."""
        pool = self._pool if self._pid == os.getpid() else None
        if pool is None:
            return
        with pool._lock:
            for conn in pool._pool:
                conn.close()
            pool._pool.clear()

    def reset(self):
        """Close every pooled connection (used after a database restart or by operators)."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.closeall()
            self._pool = None
            self._borrowed = 0

    def stats(self):
        """Connections borrowed and idle in this process's pool."""
        pool = self._pool if self._pid == os.getpid() else None
        idle = len(pool._pool) if pool is not None else 0
        return {"pool_in_use": self._borrowed, "pool_idle": idle, "pool_max": self.maxconn}


def get_database():
    """The app's Database object."""
    return current_app.extensions["ops_gateway.db"]


def get_conn():
    """The connection borrowed for this request (borrowed on first use, returned at teardown)."""
    if "db_conn" not in g:
        g.db_conn = get_database().getconn()
    return g.db_conn


@contextmanager
def transaction():
    """A cursor inside one transaction on the request's connection: commit or roll back."""
    conn = get_conn()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


@contextmanager
def statement():
    """A cursor for exactly one statement that commits by itself: one round trip, no BEGIN/COMMIT.

    For the request path's single reads and single-row updates; statements that must commit
    together use ``transaction()``.
    """
    conn = get_conn()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        if not conn.closed:
            conn.autocommit = False


def release_request_connection(exc=None):
    """Teardown hook: give the request's connection back to the pool."""
    conn = g.pop("db_conn", None)
    if conn is not None:
        broken = conn.closed or isinstance(exc, UNAVAILABLE_ERRORS)
        get_database().putconn(conn, broken=broken)


def init_app(app, database):
    """Attach the Database to the app and return connections after every request."""
    TimedCursor.slow_query_ms = app.config["SLOW_QUERY_MS"]
    Prepared.enabled = app.config["DB_PREPARED_STATEMENTS"]
    app.extensions["ops_gateway.db"] = database
    app.teardown_appcontext(release_request_connection)
