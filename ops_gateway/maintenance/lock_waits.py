"""Maintenance statements that wait only briefly for their lock and are otherwise deferred to the next run."""

from contextlib import contextmanager

import psycopg2.errors

from ops_gateway.core import db


@contextmanager
def deferred_if_locked(name, deferred, lock_timeout):
    """One transaction whose statements wait at most ``lock_timeout`` for a lock, else ``name`` joins ``deferred``.

    DDL or ANALYZE queued behind a long transaction would hold up every request queued behind it
    in turn, so a job gives up on the lock quickly and its next run tries again. On the timeout the
    transaction is rolled back, the rest of the block is skipped and the error is not raised.
    """
    try:
        with db.transaction() as cur:
            db.set_local(cur, "lock_timeout", lock_timeout)
            yield cur
    except psycopg2.errors.LockNotAvailable:
        deferred.append(name)
