"""Whether the keys of a worker's open streams are still usable, asked for all of them at once.

A stream outlives the key check it started with. A key revoked (or its user suspended) while
its streams run must stop them within seconds, so each stream registers its key here and asks
``usable`` as it relays; the first to find the last answer older than ``CHECK_SECONDS`` asks
Postgres about every registered key in one query. A worker with 2000 open streams makes one
query every few seconds, not 2000, and a stream cut this way is settled for what it delivered.
"""

import logging
import threading
import time
from collections import Counter

import psycopg2

from ops_gateway.accounts import queries
from ops_gateway.core import db
from ops_gateway.core.errors import GatewayError

logger = logging.getLogger("ops_gateway.security")

CHECK_SECONDS = 5.0  # the bound is 10 s from revocation to the cut


class KeyWatch:
    """The open streams' keys in this process and which of them were found unusable."""

    def __init__(self, check_seconds=CHECK_SECONDS):
        self.check_seconds = check_seconds
        self._streams = Counter()  # api_key_id -> open streams
        self._unusable = set()
        self._changes = threading.Lock()
        self._checking = threading.Lock()
        self._checked_at = time.monotonic()

    def watch(self, key_id):
        """A stream of ``key_id`` opened."""
        with self._changes:
            self._streams[key_id] += 1

    def forget(self, key_id):
        """A stream of ``key_id`` ended."""
        with self._changes:
            self._streams[key_id] -= 1
            if self._streams[key_id] <= 0:
                del self._streams[key_id]
                self._unusable.discard(key_id)

    def usable(self, key_id):
        """Whether ``key_id`` was usable at the last check, checking again when it is due."""
        due = time.monotonic() - self._checked_at >= self.check_seconds
        if due and self._checking.acquire(blocking=False):  # one stream checks; the others read
            try:
                self._check()
            finally:
                self._checking.release()
        return key_id not in self._unusable

    def _check(self):
        with self._changes:
            key_ids = list(self._streams)
        self._checked_at = time.monotonic()
        if not key_ids:
            return
        try:
            with db.statement() as cur:
                unusable = queries.unusable_keys(cur, key_ids)
        except (psycopg2.Error, GatewayError) as error:  # streams keep their last answer until the next check
            logger.warning("open streams' keys could not be checked", extra={"error": type(error).__name__})
            return
        with self._changes:
            self._unusable = unusable & set(self._streams)


OPEN_STREAMS = KeyWatch()
