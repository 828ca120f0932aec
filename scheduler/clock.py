"""The clock process: an APScheduler BlockingScheduler firing every enabled job on its ticks.

Ticks are whole multiples of a job's interval since the Unix epoch, so every clock process, on
any instance, fires for the same ticks; the runner then lets exactly one of them run each tick.
Jitter is drawn afresh for every tick (APScheduler's own jitter accumulates from one fire time
to the next, which would let clocks drift apart) and stays under a tenth of the interval.
"""

import logging
import math
import random
import signal
import time
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger

from ops_gateway import services
from scheduler import runner
from scheduler.jobs import JOBS, interval_seconds, jitter_seconds

logger = logging.getLogger("ops_gateway.scheduler")


class AlignedIntervalTrigger(BaseTrigger):
    """Fire at every multiple of ``interval`` seconds since the epoch, plus up to ``jitter`` seconds."""

    def __init__(self, interval, jitter):
        """Remember the interval and the jitter bound, in seconds."""
        self.interval = interval
        self.jitter = jitter

    def get_next_fire_time(self, previous_fire_time, now):
        """The tick after the previous one (or the first tick from now), jittered."""
        if previous_fire_time is not None:
            tick = (math.floor(previous_fire_time.timestamp() / self.interval) + 1) * self.interval
        else:
            tick = math.ceil(now.timestamp() / self.interval) * self.interval
        return datetime.fromtimestamp(tick + random.uniform(0, self.jitter), UTC)

    def __str__(self):
        return f"every {self.interval:g}s (aligned, jitter {self.jitter:g}s)"


def current_tick(interval):
    """The tick a run starting now belongs to (jitter never carries a run past its tick's interval)."""
    return datetime.fromtimestamp(math.floor(time.time() / interval) * interval, UTC)


def run_scheduled(app, name, interval):
    """APScheduler's target: run one tick of a job in its own app context; errors are logged, never raised."""
    with app.app_context():
        try:
            runner.run_job(name, trigger="schedule", tick=current_tick(interval))
        except Exception:
            logger.exception("scheduled run could not be recorded", extra={"job": name})


def build_scheduler(app, scheduler_class=BlockingScheduler):
    """A scheduler with every enabled job: coalesced, one instance at a time, aligned jittered ticks."""
    scheduler = scheduler_class(timezone=UTC, executors={"default": ThreadPoolExecutor(len(JOBS))})
    for job in JOBS.values():
        interval = interval_seconds(job, app.config)
        if not interval:
            continue
        scheduler.add_job(
            run_scheduled,
            AlignedIntervalTrigger(interval, jitter_seconds(interval)),
            args=(app, job.name, interval),
            id=job.name,
            name=job.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(interval)),
        )
    return scheduler


def main():
    """Run the clock until SIGTERM/SIGINT."""
    app = services.create_service_app()
    services.init_domains(app)
    scheduler = build_scheduler(app)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    logger.info(
        "scheduler started",
        extra={"jobs": {job.id: str(job.trigger) for job in scheduler.get_jobs()}},
    )
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    logger.info("scheduler stopped")
