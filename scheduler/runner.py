"""Run a job once: its single-runner lease, its tick claim and its job_runs row.

Every run, scheduled or by hand, first takes the job's lease (``scheduler/leases.py``) on a
dedicated autocommit connection, so two processes (or instances) never run one job at the same
time; a runner that cannot get it records ``skipped``. A scheduled run also claims its tick in
``job_leases`` under that lease, so when two clocks fire for the same tick one after the other,
the second finds the tick taken and records ``skipped`` too: one tick, one run. Every statement
commits on its own, so all of this works through a transaction-mode pooler; a runner that dies
leaves a lease that expires before the job's next tick.
"""

import logging
import os
import socket
import time

from flask import current_app

from ops_gateway.core import db
from ops_gateway.core.errors import NotFound
from ops_gateway.maintenance import job_run_queries as job_runs
from scheduler.jobs import JOBS, JobSkipped, interval_seconds
from scheduler.leases import Lease, lease_seconds

logger = logging.getLogger("ops_gateway.scheduler")


def runner_id():
    """Who ran it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_tick(cur, name, tick):
    """Record that ``tick`` of the job is being run; False when it (or a later one) already was."""
    return job_runs.claim_tick(cur, name, tick, runner_id())


def run_job(name, trigger="manual", tick=None, actor=None):
    """Run one job now under its lease; return its job_runs row (success, failed or skipped).

    ``tick`` is the scheduled tick a clock fires for (None for runs by hand, which claim none).
    An unknown name is NotFound.
    """
    job = JOBS.get(name)
    if job is None:
        raise NotFound(f"there is no job named {name!r}", {"jobs": sorted(JOBS)}, code="job_not_found")
    meta = {"trigger": trigger}
    if tick is not None:
        meta["tick"] = tick.isoformat()
    if actor:
        meta["actor"] = actor
    conn = db.get_database().connect()
    try:
        conn.autocommit = True  # history rows commit at once, whatever the job's own transactions do
        lease = Lease(conn, name, runner_id(), lease_seconds(interval_seconds(job, current_app.config)))
        with conn.cursor() as cur:
            if not lease.take():
                return job_runs.record_skipped(cur, name, runner_id(), {**meta, "reason": "running_elsewhere"})
            try:
                job_runs.fail_orphans(cur, name)
                if tick is not None and not claim_tick(cur, name, tick):
                    return job_runs.record_skipped(cur, name, runner_id(), {**meta, "reason": "tick_already_run"})
                return _execute(cur, job, meta, lease)
            finally:
                lease.release()
    finally:
        conn.close()


def _execute(cur, job, meta, lease):
    run_id = job_runs.record_start(cur, job.name, runner_id(), meta)
    started = time.perf_counter()
    status, details, error = "success", dict(meta), None
    try:
        with lease:
            details.update(job.body() or {})
    except JobSkipped as exc:
        status, details["reason"] = "skipped", str(exc)
    except Exception as exc:
        # One job's failure is recorded and stops nothing else: not the clock, not other jobs.
        logger.exception("job failed", extra={"job": job.name})
        status, error = "failed", f"{exc.__class__.__name__}: {exc}"[:2000]
    duration_ms = (time.perf_counter() - started) * 1000
    run = job_runs.record_finish(cur, run_id, status, duration_ms, details, error)
    logger.info("job finished", extra={"job": job.name, "status": status, "duration_ms": round(duration_ms, 1)})
    return run
