"""The clock's SQL: the tick leases that let one runner take each tick, the job locks a running job
holds (``scheduler/leases.py``), and the job_runs history the runner writes and /admin/jobs reads.
Plain functions taking the cursor first and returning dicts."""

import json
from functools import partial

from psycopg2.extras import Json

_RUN_COLUMNS = "id, job, status, started_at, finished_at, duration_ms, details, error, runner"

_CLAIM_TICK = """
INSERT INTO job_leases AS l (job, last_tick, runner) VALUES (%s, %s, %s)
ON CONFLICT (job) DO UPDATE SET last_tick = EXCLUDED.last_tick, runner = EXCLUDED.runner, updated_at = now()
WHERE l.last_tick < EXCLUDED.last_tick
RETURNING job
"""
_json = partial(Json, dumps=partial(json.dumps, default=str))  # details may hold datetimes and decimals


def claim_tick(cur, job, tick, runner):
    """Record ``tick`` of the job as run by ``runner``; False when it (or a later one) already was."""
    cur.execute(_CLAIM_TICK, (job, tick, runner))
    return cur.fetchone() is not None


def last_ticks(cur):
    """{job: the last tick a clock claimed}."""
    cur.execute("SELECT job, last_tick FROM job_leases")
    return {row["job"]: row["last_tick"] for row in cur.fetchall()}


def record_start(cur, job, runner, details):
    """Insert a ``running`` row; return its id."""
    cur.execute(
        "INSERT INTO job_runs (job, status, details, runner) VALUES (%s, 'running', %s, %s) RETURNING id",
        (job, _json(details), runner),
    )
    return cur.fetchone()["id"]


def record_finish(cur, run_id, status, duration_ms, details, error):
    """Close a run with its outcome; return the row."""
    cur.execute(
        "UPDATE job_runs SET status = %s, finished_at = now(), duration_ms = %s, details = %s, error = %s"
        f" WHERE id = %s RETURNING {_RUN_COLUMNS}",
        (status, round(duration_ms, 1), _json(details), error, run_id),
    )
    return cur.fetchone()


def record_skipped(cur, job, runner, details):
    """Insert a finished ``skipped`` row (another runner had the lease or the tick); return it."""
    cur.execute(
        "INSERT INTO job_runs (job, status, finished_at, duration_ms, details, runner)"
        f" VALUES (%s, 'skipped', now(), 0, %s, %s) RETURNING {_RUN_COLUMNS}",
        (job, _json(details), runner),
    )
    return cur.fetchone()


def fail_orphans(cur, job):
    """Mark ``running`` rows of a job failed: called under the job's lease, so their runner is gone."""
    cur.execute(
        "UPDATE job_runs SET status = 'failed', finished_at = now(), error = 'runner exited before finishing'"
        " WHERE job = %s AND status = 'running'",
        (job,),
    )
    return cur.rowcount


def recent_runs(cur, names, limit, include_skipped):
    """The newest ``limit`` runs of each job, newest first, keyed by job."""
    statuses = ["running", "success", "failed"] + (["skipped"] if include_skipped else [])
    cur.execute(
        f"SELECT r.* FROM unnest(%s::text[]) AS j(name) CROSS JOIN LATERAL ("
        f" SELECT {_RUN_COLUMNS} FROM job_runs WHERE job = j.name AND status = ANY(%s)"
        " ORDER BY started_at DESC LIMIT %s) r",
        (list(names), statuses, limit),
    )
    runs = {name: [] for name in names}
    for row in cur.fetchall():
        runs[row["job"]].append(row)
    return runs


# Job locks: one row per running job, its holder and expiry (params: job, holder, seconds)

_TAKE = """
INSERT INTO job_locks AS l (job, holder, expires_at)
VALUES (%(job)s, %(holder)s, now() + %(seconds)s * interval '1 second')
ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, taken_at = now(), expires_at = EXCLUDED.expires_at
WHERE l.expires_at < now()
RETURNING job
"""
_RENEW = (
    "UPDATE job_locks SET expires_at = now() + %(seconds)s * interval '1 second'"
    " WHERE job = %(job)s AND holder = %(holder)s"
)
_RELEASE = "DELETE FROM job_locks WHERE job = %(job)s AND holder = %(holder)s"


def take_lease(cur, params):
    """Take a job's lock if it is free or expired; whether it was taken."""
    cur.execute(_TAKE, params)
    return cur.fetchone() is not None


def renew_lease(cur, params):
    """Extend our lock; False when another runner holds it now."""
    cur.execute(_RENEW, params)
    return cur.rowcount > 0


def release_lease(cur, params):
    """Give our lock back (only ours: after an expiry another runner may hold it)."""
    cur.execute(_RELEASE, params)
