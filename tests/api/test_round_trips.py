"""The hot path's round trips, counted: a completion must not grow a Postgres or Redis call unnoticed.

Every statement, BEGIN, COMMIT and ROLLBACK sent to Postgres and every command or pipeline sent to
Redis during one request is counted (the calls still reach the real servers). The figures are the
design's: Postgres, the key lookup that holds the worst case and the one settlement statement;
Redis, the gate script that admits and the charge script that settles (and reads the windows
back for the rate-limit headers).
"""

import os
import time
from collections import Counter

import psycopg2.extensions
import pytest
import redis

from ops_gateway.core.connection_pool import GatewayConnection, TimedCursor
from ops_gateway.observability import system_state
from tests.helpers import create_user
from tests.helpers.upstream import chat

COMPLETION = {"postgres": 2, "redis": 2}
# A stream's rate-limit headers go out before its charge script has read the windows back: one read more.
STREAM = {"postgres": 2, "redis": 3}


@pytest.fixture
def round_trips(monkeypatch):
    """A Counter of round trips by store, counting from the fixture's start.

    The process's resource sample (``system_state.publish_sample``, one write per 10 s per
    process, not per request) is marked as just published, so it does not fall in the count.
    """
    monkeypatch.setitem(system_state._published, "pid", os.getpid())
    monkeypatch.setitem(system_state._published, "at", time.monotonic())
    counts = Counter()
    execute, execute_command, pipeline_execute = (
        TimedCursor.execute,
        redis.Redis.execute_command,
        redis.client.Pipeline.execute,
    )

    def counted_execute(cursor, query, vars=None):
        idle = cursor.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        counts["postgres"] += 2 if idle and not cursor.connection.autocommit else 1  # BEGIN goes first
        return execute(cursor, query, vars)

    def counted(store, method):
        def call(self, *args, **kwargs):
            counts[store] += 1
            return method(self, *args, **kwargs)

        return call

    monkeypatch.setattr(TimedCursor, "execute", counted_execute)
    for name in ("commit", "rollback"):
        monkeypatch.setattr(GatewayConnection, name, counted("postgres", getattr(GatewayConnection, name)))
    monkeypatch.setattr(redis.Redis, "execute_command", counted("redis", execute_command))
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted("redis", pipeline_execute))
    return counts


@pytest.fixture
def key(client, upstream):
    key = create_user(client, credits="1.00", plan="team")[1]
    assert chat(client, key).status_code == 200  # the first call of a process fills its caches
    return key


def test_a_completion_costs_two_postgres_and_two_redis_round_trips(client, key, round_trips):
    assert chat(client, key).status_code == 200
    assert dict(round_trips) == COMPLETION


def test_a_streamed_completion_costs_one_redis_read_more(client, key, round_trips):
    response = chat(client, key, stream=True)
    assert response.status_code == 200
    response.get_data()
    response.close()
    assert dict(round_trips) == STREAM
