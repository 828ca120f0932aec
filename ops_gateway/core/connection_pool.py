"""The PostgreSQL pool: one bounded, waiting psycopg2 pool per process, fork-aware.

The pool is created lazily and re-created when the process id changes, so a pool made before
gunicorn forks is never shared by two workers. Borrowers wait (cooperatively under gevent) up to
``pool_timeout_s`` for a free connection; a pooled connection the server dropped while idle is
replaced before it is lent. Cursors return rows as dicts and log slow statements.
"""

import logging
import os
import threading
import time
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
import psycopg2.pool
from gevent.monkey import get_original
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

logger = logging.getLogger("ops_gateway.db")
_poll, _POLLIN = get_original("select", ["poll", "POLLIN"])

UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
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


class PoolExhausted(psycopg2.pool.PoolError):
    """Every pooled connection stayed borrowed for the whole wait: a 503 of its own."""


class WaitingPool:
    """A bounded pool that makes borrowers wait (up to ``timeout`` seconds) for a free connection.

    Connections are opened on demand and kept when returned. The semaphore is cooperative under
    gevent (``threading`` is monkey-patched before the pool is built), so a waiting request
    costs a greenlet, not a blocked worker.
    """

    def __init__(self, maxconn, timeout, connect):
        self.maxconn = maxconn
        self.timeout = timeout
        self._connect = connect
        self._slots = threading.BoundedSemaphore(maxconn)
        self._idle = []
        self._lock = threading.Lock()
        self.in_use = 0
        self.closed = False

    def getconn(self):
        """A connection (idle or new), or PoolExhausted after ``timeout`` seconds."""
        if not self._slots.acquire(timeout=self.timeout):
            raise PoolExhausted(f"no free database connection within {self.timeout:g}s")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
                self.in_use += 1
            return conn if conn is not None else self._connect()
        except BaseException:
            self._release()
            raise

    def putconn(self, conn, close=False):
        """Take a connection back (closing it when asked or when the pool is closed)."""
        try:
            if close or self.closed or conn.closed:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            self._release()

    def _release(self):
        with self._lock:
            self.in_use -= 1
        self._slots.release()

    def idle_count(self):
        """Connections open and not borrowed."""
        return len(self._idle)

    def close_idle(self):
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def closeall(self):
        """Close idle connections now and borrowed ones when they come back."""
        self.closed = True
        self.close_idle()


def _went_away(conn):
    """Whether the server closed (or wrote to) an idle connection: a restart or termination.

    An idle connection has nothing to read; anything readable is the server's goodbye or EOF.
    One non-blocking poll, no round trip.
    """
    if conn.closed:
        return True
    poller = _poll()  # a zero timeout never blocks, so gevent's cooperative poll is not needed
    poller.register(conn.fileno(), _POLLIN)
    return bool(poller.poll(0))


@contextmanager
def committed(conn):
    """A cursor on ``conn`` inside one transaction: committed at the end, rolled back on any error."""
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        if not conn.closed:
            conn.rollback()
        raise


class Database:
    """A lazily created, fork-aware WaitingPool for one database URL."""

    def __init__(self, url, maxconn=12, statement_timeout_ms=5000, connect_timeout_s=2, pool_timeout_s=5.0):
        self.url = url
        self.maxconn = maxconn
        self.pool_timeout_s = pool_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self._pool = None
        self._pid = None
        self._lock = threading.Lock()
        self.on_exhausted = None  # called each time a borrower gave up waiting

    def connect(self, **extra):
        """Open a fresh connection (the pool's, or one for migrations, CLI, scheduler leases), in UTC.

        The timezone is SET once per connection, only when the server announced another one: a
        reported parameter, which PgBouncer tracks per client and restores on every server
        connection it lends, so the SET holds through a transaction-mode pooler too.
        """
        conn = psycopg2.connect(self.url, **self._connect_kwargs(), **extra)
        if conn.get_parameter_status("TimeZone") not in UTC_NAMES:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET timezone TO 'UTC'")
            conn.autocommit = False
        return conn

    def _connect_kwargs(self):
        # keepalives make a vanished server fail fast instead of hanging a request. No startup
        # ``options``: PgBouncer refuses them (statement_timeout is a role default: core/session_settings.py).
        return {
            "connect_timeout": self.connect_timeout_s,
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
                    self._pool = WaitingPool(self.maxconn, self.pool_timeout_s, self.connect)
                    self._pid = os.getpid()
        return self._pool

    def getconn(self):
        """Borrow a connection, waiting for a free one; the caller must hand it back with ``putconn``."""
        pool = self._get_pool()
        try:
            conn = pool.getconn()
            while _went_away(conn):  # pooled connections the server dropped while idle are replaced
                pool.putconn(conn, close=True)
                conn = pool.getconn()
        except PoolExhausted:
            if self.on_exhausted is not None:
                self.on_exhausted()
            raise
        conn.pool = pool  # returned to the pool it came from, even after a reset
        return conn

    def putconn(self, conn, broken=False):
        """Return a connection, discarding it when broken or left mid-transaction."""
        pool = getattr(conn, "pool", None) or self._get_pool()
        try:
            if not (conn.closed or broken) and conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
                conn.rollback()
            pool.putconn(conn, close=bool(conn.closed or broken))
        except psycopg2.Error:
            pool.putconn(conn, close=True)

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
        if pool is not None:
            pool.close_idle()

    def reset(self):
        """Close every pooled connection (used after a database restart or by operators)."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.closeall()
            self._pool = None

    def stats(self):
        """Connections borrowed and idle in this process's pool."""
        pool = self._pool if self._pid == os.getpid() else None
        in_use, idle = (pool.in_use, pool.idle_count()) if pool is not None else (0, 0)
        return {"pool_in_use": in_use, "pool_idle": idle, "pool_max": self.maxconn}
