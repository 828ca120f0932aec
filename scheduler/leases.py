"""Single-runner leases: a ``job_locks`` row per running job, renewed while it runs, expiring on its own.

A lease rather than an advisory lock, because it works through any pooler (a session lock
behind PgBouncer in transaction mode stays on a server connection lent to others) and because a
job may run for minutes, longer than a transaction should stay open. A lease lasts at most half
a tick, and its holder renews it every third of that, so a runner that dies leaves its job
runnable again by the next tick.
"""

import logging
import threading
import uuid

from ops_gateway.maintenance import job_run_queries

logger = logging.getLogger("ops_gateway.scheduler")

MAX_LEASE_SECONDS = 60.0  # also the lease of runs by hand of unscheduled jobs
MIN_LEASE_SECONDS = 0.5


def lease_seconds(interval):
    """How long a lease lasts: half the job's interval, within bounds (no interval: the upper bound)."""
    return max(MIN_LEASE_SECONDS, min(interval / 2, MAX_LEASE_SECONDS)) if interval else MAX_LEASE_SECONDS


class Lease:
    """One runner's claim on a job, on an autocommit connection of its own."""

    def __init__(self, conn, job, runner, seconds):
        """Name the holder uniquely (one process may run several jobs, or one job twice by hand)."""
        self.conn = conn
        self.params = {"job": job, "holder": f"{runner}:{uuid.uuid4().hex[:8]}", "seconds": seconds}
        self._stop = threading.Event()
        self._renewer = None

    def take(self):
        """Take the lease if it is free or expired; whether it was taken."""
        with self.conn.cursor() as cur:
            return job_run_queries.take_lease(cur, self.params)

    def release(self):
        """Give the lease back (only ours: after an expiry another runner may hold it)."""
        with self.conn.cursor() as cur:
            job_run_queries.release_lease(cur, self.params)

    def __enter__(self):
        """Renew the lease in the background while the block runs."""
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.params['job']}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc):
        """Stop renewing before the connection is used again."""
        self._stop.set()
        self._renewer.join()

    def _renew(self):
        # A failed renewal is retried at the next beat; the job itself is never interrupted.
        while not self._stop.wait(self.params["seconds"] / 3):
            try:
                with self.conn.cursor() as cur:
                    if not job_run_queries.renew_lease(cur, self.params):
                        logger.error("job lease lost to another runner", extra={"job": self.params["job"]})
            except Exception:
                logger.exception("job lease renewal failed", extra={"job": self.params["job"]})
