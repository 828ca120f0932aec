"""What /admin/jobs and the dashboard read of the jobs: each job's schedule beside its recent runs."""

import math
import time
from datetime import UTC, datetime

from ops_gateway.maintenance.job_run_queries import last_ticks, recent_runs
from scheduler.jobs import JOBS, interval_seconds, jitter_seconds


def describe_jobs(cur, config, history, include_skipped=False):
    """Every job with its schedule, next tick, last real run and recent history."""
    names = list(JOBS)
    last = recent_runs(cur, names, 1, include_skipped=False)
    runs = recent_runs(cur, names, history, include_skipped)
    ticks = last_ticks(cur)
    now = time.time()
    described = []
    for job in JOBS.values():
        interval = interval_seconds(job, config)
        next_run = datetime.fromtimestamp(math.ceil(now / interval) * interval, UTC) if interval else None
        described.append(
            {
                "name": job.name,
                "description": job.description,
                "enabled": bool(interval),
                "interval_seconds": interval,
                "jitter_seconds": jitter_seconds(interval),
                "interval_setting": job.interval_setting,
                "next_run_at": next_run,
                "last_scheduled_tick": ticks.get(job.name),
                "last_run": (last[job.name] or [None])[0],
                "recent_runs": runs[job.name],
            }
        )
    return described
