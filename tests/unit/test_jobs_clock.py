"""The clock's trigger: ticks aligned to the epoch, fresh jitter that never accumulates."""

from datetime import UTC, datetime, timedelta

from ops_gateway.core.config import load_settings
from scheduler.clock import AlignedIntervalTrigger
from scheduler.jobs import JOBS, interval_seconds, jitter_seconds
from scheduler.leases import MAX_LEASE_SECONDS, lease_seconds


def test_first_fire_is_the_next_multiple_of_the_interval():
    trigger = AlignedIntervalTrigger(300, 0)
    now = datetime(2030, 1, 1, 12, 7, 30, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2030, 1, 1, 12, 10, tzinfo=UTC)


def test_jitter_stays_within_its_bound_and_never_drifts():
    trigger = AlignedIntervalTrigger(5, 0.5)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, start)
    for tick in range(1, 2000):
        fire = trigger.get_next_fire_time(fire, fire)
        offset = (fire - start - timedelta(seconds=5 * tick)).total_seconds()
        assert 0 <= offset <= 0.5, tick


def test_intervals_come_from_settings_times_the_scale():
    settings = load_settings({"USAGE_ROLLUP_INTERVAL_SECONDS": "60", "SCHEDULER_INTERVAL_SCALE": "0.5"})
    assert interval_seconds(JOBS["usage_rollup"], settings) == 30
    assert interval_seconds(JOBS["retention"], settings) == 43200
    assert interval_seconds(JOBS["retention"], {**settings, "RETENTION_INTERVAL_SECONDS": 0}) == 0
    assert jitter_seconds(30) == 3 and jitter_seconds(86400) == 60


def test_a_dead_runners_lease_expires_before_the_next_tick():
    assert lease_seconds(5) == 2.5 and lease_seconds(1) == 0.5
    assert lease_seconds(86400) == MAX_LEASE_SECONDS and lease_seconds(0) == MAX_LEASE_SECONDS
