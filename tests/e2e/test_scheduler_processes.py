"""Two real clock processes (``python -m scheduler``) on one database: every job runs once per tick."""

import time

import pytest

from scheduler.jobs import JOBS
from tests.e2e.clocks import clock_env, running_clocks, scheduled_runs_by_tick

TICK_SECONDS = 5
OBSERVE_SECONDS = 3 * TICK_SECONDS + 2  # at least three whole ticks once both clocks are up


@pytest.mark.slow  # three whole clock ticks
def test_two_clocks_run_every_job_exactly_once_per_tick(tmp_path, test_settings, upstream, sql):
    env = clock_env(test_settings, upstream, tmp_path / "backups", TICK_SECONDS)
    with running_clocks(env, tmp_path) as (clocks, logs):
        time.sleep(OBSERVE_SECONDS)
        assert [clock.poll() for clock in clocks] == [None, None], [log.read_text() for log in logs]
    assert [clock.returncode for clock in clocks] == [0, 0]  # SIGTERM is a clean shutdown

    succeeded, by_tick, rows = scheduled_runs_by_tick(sql)
    assert len({row["runner"] for row in rows}) == 2  # both clocks fired for every tick they saw
    for (job, tick), tick_rows in by_tick.items():
        if all(row["status"] == "skipped" for row in tick_rows):  # only when the previous run was still going
            assert {row["reason"] for row in tick_rows} == {"running_elsewhere"}, (job, tick, tick_rows)
    assert {job: len(succeeded[job]) for job in JOBS if len(succeeded[job]) < 3} == {}, succeeded
