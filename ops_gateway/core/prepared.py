"""Prepared statements for the hot path: parsed and planned once per connection, then EXECUTEd."""

import re

from ops_gateway.core.pool import GatewayConnection


class Prepared:
    """A hot-path statement parsed and planned once per connection (PREPARE), then EXECUTEd.

    For statements whose planning costs Postgres more than running them (the key lookup, the
    settlement; figures in docs/performance.md). Written with ``%(name)s`` parameters like any
    other statement; with ``DB_PREPARED_STATEMENTS=false`` (PgBouncer in transaction mode) it
    runs as plain SQL.
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
