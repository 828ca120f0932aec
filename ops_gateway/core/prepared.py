"""Prepared statements for the hot path: parsed and planned once per connection, then EXECUTEd."""

import logging
import re

import psycopg2

from ops_gateway.core.connection_pool import GatewayConnection

logger = logging.getLogger("ops_gateway.db")

SHARED_SESSIONS_MESSAGE = (
    "DB_PREPARED_STATEMENTS=true, but database sessions are shared between client connections"
    " (a pooler in transaction mode, such as PgBouncer with pool_mode=transaction): a statement"
    " prepared on one connection is missing or already there on the next. Set"
    " DB_PREPARED_STATEMENTS=false, or pool in session mode. PgBouncer's max_prepared_statements"
    " (1.21 and later) does not help: it tracks protocol-level statements, and these are SQL PREPARE."
)
# Raised only when a connection's server session is not the one it prepared on.
_SHARED_SESSION_ERRORS = (psycopg2.errors.InvalidSqlStatementName, psycopg2.errors.DuplicatePreparedStatement)


class Prepared:
    """A hot-path statement parsed and planned once per connection (PREPARE), then EXECUTEd.

    For statements whose planning costs Postgres more than running them (the key lookup, the
    settlement; figures in docs/performance.md). Written with ``%(name)s`` parameters like any
    other statement; with ``DB_PREPARED_STATEMENTS=false`` (PgBouncer in transaction mode) it
    runs as plain SQL. Start-up refuses prepared statements where sessions are shared
    (core/session_settings.py); should sharing show up later anyway, the process stops preparing at the
    first sign of it instead of failing every request.
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
        try:
            if self.name not in conn.prepared:
                cur.execute(self._prepare)
                conn.prepared.add(self.name)
            return cur.execute(self._execute, [params[parameter] for parameter in self.parameters])
        except _SHARED_SESSION_ERRORS:
            Prepared.enabled = False
            logger.error(SHARED_SESSIONS_MESSAGE + " Prepared statements are now off in this process.")
            if conn.autocommit:  # nothing ran: the statement can run again as plain SQL
                return cur.execute(self.query, params)
            raise  # the caller's transaction is aborted; its next one runs plain SQL
