"""Two real clock processes (``python -m scheduler``) on one database: every job runs once per tick."""

import os
import subprocess
import sys
import time
from collections import defaultdict

from ops_gateway.maintenance.jobs import JOBS
from tests.e2e.servers import ROOT

TICK_SECONDS = 5
OBSERVE_SECONDS = 3 * TICK_SECONDS + 2  # at least three whole ticks once both clocks are up


def clock_env(test_settings, upstream, backup_dir):
    """The environment of a clock process on this test's database, with every job every TICK_SECONDS."""
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
    env.update({job.interval_setting: str(TICK_SECONDS) for job in JOBS.values()})
    return env


def wait_until_started(clocks, logs, timeout=30):
    """Block until every clock logged that its scheduler started."""
    deadline = time.monotonic() + timeout
    while not all("scheduler started" in log.read_text() for log in logs):
        assert all(clock.poll() is None for clock in clocks), [log.read_text() for log in logs]
        assert time.monotonic() < deadline, [log.read_text() for log in logs]
        time.sleep(0.2)


def test_two_clocks_run_every_job_exactly_once_per_tick(tmp_path, test_settings, upstream, sql):
    env = clock_env(test_settings, upstream, tmp_path / "backups")
    logs = [tmp_path / f"clock-{n}.log" for n in (1, 2)]
    clocks = []
    try:
        for log in logs:
            with open(log, "wb") as out:
                clocks.append(
                    subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=ROOT, env=env, stdout=out, stderr=out)
                )
        wait_until_started(clocks, logs)
        time.sleep(OBSERVE_SECONDS)
        assert [clock.poll() for clock in clocks] == [None, None], [log.read_text() for log in logs]
    finally:
        for clock in clocks:
            clock.terminate()
        for clock in clocks:
            try:
                clock.wait(timeout=20)
            except subprocess.TimeoutExpired:
                clock.kill()
                clock.wait()
    assert [clock.returncode for clock in clocks] == [0, 0]  # SIGTERM is a clean shutdown

    rows = sql(
        "SELECT job, status, runner, error, details->>'tick' AS tick, details->>'reason' AS reason"
        " FROM job_runs WHERE details->>'trigger' = 'schedule'"
    )
    assert len({row["runner"] for row in rows}) == 2  # both clocks fired for every tick they saw
    by_tick = defaultdict(list)
    for row in rows:
        by_tick[(row["job"], row["tick"])].append(row)
    for (job, tick), tick_rows in by_tick.items():
        ran = [row for row in tick_rows if row["status"] != "skipped"]
        assert len(ran) <= 1, (job, tick, tick_rows)  # never two runs of one tick
        assert all(row["status"] == "success" for row in ran), (job, tick, ran)
        if not ran:  # only when the previous tick's run was still going
            assert {row["reason"] for row in tick_rows} == {"running_elsewhere"}, (job, tick, tick_rows)
    succeeded = defaultdict(set)
    for (job, tick), tick_rows in by_tick.items():
        if any(row["status"] == "success" for row in tick_rows):
            succeeded[job].add(tick)
    assert {job: len(succeeded[job]) for job in JOBS if len(succeeded[job]) < 3} == {}, succeeded
