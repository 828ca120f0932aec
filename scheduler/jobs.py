"""The job table: each maintenance job's name, interval setting and a thin body calling the service
doing the work. The clock process (``scheduler/``) decides when they run; the dashboard's status
reads their intervals.

Each body runs inside an app context and returns a JSON-able dict of details for its job_runs
row. Intervals come from ``<NAME>_INTERVAL_SECONDS`` times SCHEDULER_INTERVAL_SCALE; 0 leaves
a job unscheduled (it can still be run by hand).
"""

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from ops_gateway.billing import budgets, credits, reconciliation
from ops_gateway.core import db, redis_store
from ops_gateway.dashboard import series as dashboard_series
from ops_gateway.limits import ip_blocks
from ops_gateway.maintenance import backup_verification, cache_cleanup, db_maintenance, retention, rollups
from ops_gateway.observability import alert_rules
from ops_gateway.upstream import catalog as model_catalog
from ops_gateway.upstream import openrouter
from ops_gateway.upstream.failures import UpstreamError

MIN_INTERVAL_SECONDS = 1.0
JITTER_FRACTION = 0.1  # well under one interval, so a run always lands in the tick it was fired for
MAX_JITTER_SECONDS = 60.0


class JobSkipped(Exception):
    """A job body has nothing it can do (e.g. not configured); its run is recorded as skipped."""


@dataclass(frozen=True)
class Job:
    """One scheduled job."""

    name: str
    body: Callable[[], dict]
    description: str

    @property
    def interval_setting(self):
        """The environment variable holding this job's interval."""
        return f"{self.name.upper()}_INTERVAL_SECONDS"


def interval_seconds(job, config):
    """Seconds between this job's scheduled runs; 0 when it is not scheduled."""
    seconds = config[job.interval_setting] * config["SCHEDULER_INTERVAL_SCALE"]
    return max(seconds, MIN_INTERVAL_SECONDS) if seconds else 0


def jitter_seconds(interval):
    """The random delay added to each tick, so instances do not hit the database in lockstep."""
    return min(interval * JITTER_FRACTION, MAX_JITTER_SECONDS)


def refresh_model_cache():
    """Fetch the model list from OpenRouter into the shared catalogue (skipped without an upstream:
    a failure every interval would only repeat what start-up and /health already say)."""
    if not openrouter.is_configured(current_app.config):
        raise JobSkipped("OPENROUTER_API_KEY is not set")
    return model_catalog.refresh_models()


def clean_caches():
    """Delete leaked Redis keys; report the model catalogue's age."""
    return cache_cleanup.clean_caches(redis_store.get_redis(), current_app.config["MODEL_CACHE_TTL_SECONDS"])


def roll_up_usage():
    """Recompute the recent hourly and daily usage rollups; complete the dashboard's 5-minute series."""
    with db.transaction() as cur:
        report = rollups.roll_up(cur)
    with db.transaction() as cur:
        report["five_minute"] = dashboard_series.fill(cur)
    return report


def apply_retention():
    """Create partitions ahead, drop expired months, delete old rows in batches."""
    return retention.apply_retention(current_app.config)


def verify_backups():
    """Take (or find) the newest backup, restore it into a scratch database and compare counts."""
    if not current_app.config["BACKUP_DIR"]:
        raise JobSkipped("BACKUP_DIR is not set")
    return backup_verification.verify_backups()


def maintain_database():
    """Pool health, slow queries, index health, ANALYZE of the hot tables."""
    return db_maintenance.run_maintenance(current_app.config["SLOW_QUERY_MS"])


def release_stale_holds():
    """Release credit holds left by requests that never settled (a killed worker, an outage)."""
    with db.transaction() as cur:
        released = credits.release_expired_holds(cur, current_app.config)
    return {"holds_released": released["holds"], "users_released": released["users"]}


def evaluate_alerts():
    """Resolve the budget threshold alerts of periods that have ended; measure every alert rule,
    firing or resolving its alert, and send the firing messages still owed."""
    resolved = budgets.resolve_ended_periods()
    return {**alert_rules.evaluate_alert_rules(), "budget_alerts_resolved": resolved}


def reconcile_generations():
    """Charge requests settled without upstream's cost what upstream billed (its generation lookup)."""
    client = current_app.extensions["ops_gateway.openrouter"]

    def fetch(generation_id):
        try:
            return client.generation(generation_id)
        except UpstreamError:  # logged by the client; asked again after the backoff
            return None

    return reconciliation.reconcile(fetch)


def restore_ip_blocks():
    """Set again the Redis keys of IP blocks still in force that Redis lost (a flush, a restart)."""
    return ip_blocks.restore_blocks()


JOBS = {
    name: Job(name, body, description)
    for name, body, description in (
        ("refresh_model_cache", refresh_model_cache, "keep the shared model cache warm"),
        ("cache_cleanup", clean_caches, "remove leaked rate-limit/limiter keys; report the model cache's age"),
        ("usage_rollup", roll_up_usage, "hourly and daily usage aggregates per user and model"),
        ("retention", apply_retention, "drop expired usage months, delete old audit rows, job runs and payloads"),
        ("backup_verification", verify_backups, "pg_dump, restore into a scratch database, compare row counts"),
        ("db_maintenance", maintain_database, "pool health, slow queries, index health, ANALYZE"),
        ("release_stale_holds", release_stale_holds, "release credit holds of requests that never settled"),
        ("evaluate_alerts", evaluate_alerts, "evaluate the alert rules; fire or resolve their alerts"),
        ("restore_ip_blocks", restore_ip_blocks, "re-apply IP blocks in force from Postgres to Redis"),
        ("reconcile_generations", reconcile_generations, "charge cut streams what upstream billed for them"),
    )
}
