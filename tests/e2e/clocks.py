"""Clock processes (``python -m scheduler``) for end-to-end tests, and what their runs must show."""

import os
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

from scheduler.jobs import JOBS
from tests.e2e.servers import ROOT, stop_processes


def clock_env(test_settings, upstream, backup_dir, tick_seconds):
    """The environment of a clock process on this test's database, with every job every ``tick_seconds``."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_settings["DATABASE_URL"],
            "REDIS_URL": test_settings["REDIS_URL"],
            "KEY_HASH_SECRET": test_settings["KEY_HASH_SECRET"],
            "ADMIN_API_KEY": test_settings["ADMIN_API_KEY"],
            "INSTANCE_PATH": test_settings["INSTANCE_PATH"],
            "OPENROUTER_BASE_URL": upstream.base_url,
            "OPENROUTER_API_KEY": "or-e2e-key",
            "BACKUP_DIR": str(backup_dir),
            "LOG_LEVEL": "info",
        }
    )
    env.update({job.interval_setting: str(tick_seconds) for job in JOBS.values()})
    return env


def wait_until_started(clocks, logs, timeout=30):
    """Block until every clock logged that its scheduler started."""
    deadline = time.monotonic() + timeout
    while not all("scheduler started" in log.read_text() for log in logs):
        assert all(clock.poll() is None for clock in clocks), [log.read_text() for log in logs]
        assert time.monotonic() < deadline, [log.read_text() for log in logs]
        time.sleep(0.2)


@contextmanager
def running_clocks(env, directory, count=2):
    """``count`` clocks on ``env``, up and running; (clocks, logs). On exit each gets SIGTERM (and
    is killed if it has not stopped in 20 s)."""
    logs = [directory / f"clock-{n}.log" for n in range(1, count + 1)]
    clocks = []
    try:
        for log in logs:
            with open(log, "wb") as out:
                command = [sys.executable, "-m", "scheduler"]
                clocks.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out))
        wait_until_started(clocks, logs)
        yield clocks, logs
    finally:
        stop_processes(clocks, timeout=20)


def scheduled_runs_by_tick(sql):
    """The scheduled job_runs rows grouped by (job, tick), asserting no tick ran a job twice and
    every run succeeded; {job: set of ticks it succeeded on} and the rows."""
    rows = sql(
        "SELECT job, status, runner, error, details->>'tick' AS tick, details->>'reason' AS reason"
        " FROM job_runs WHERE details->>'trigger' = 'schedule'"
    )
    by_tick = defaultdict(list)
    for row in rows:
        by_tick[(row["job"], row["tick"])].append(row)
    succeeded = defaultdict(set)
    for (job, tick), tick_rows in by_tick.items():
        ran = [row for row in tick_rows if row["status"] != "skipped"]
        assert len(ran) <= 1, (job, tick, tick_rows)  # never two runs of one tick
        assert all(row["status"] == "success" for row in ran), (job, tick, ran)
        if ran:
            succeeded[job].add(tick)
    return succeeded, by_tick, rows
