"""Component status for the dashboard overview and the public /status page (never any user data).

Each component is ``operational``, ``degraded``, ``outage`` or ``unknown``; the overall status
is the worst known one. Redis and OpenRouter problems degrade the service (it fails open and
serves the last model list); a database outage stops it.
"""

from datetime import UTC, datetime

from flask import current_app

from ops_gateway.core import db
from ops_gateway.observability import health_checks, system_state
from scheduler.jobs import JOBS, interval_seconds

SCHEDULER_MIN_STALE_SECONDS = 300
SEVERITY = {"operational": 0, "unknown": 0, "degraded": 1, "outage": 2}
LABELS = {"api": "API", "database": "Database", "redis": "Redis", "openrouter": "OpenRouter", "scheduler": "Scheduler"}


def scheduler_state(last_runs, config, now=None):
    """(state, failing jobs): ``ok`` when some job started within a few of the shortest intervals.

    ``stale`` means the clock process has stopped; ``unknown`` that it never ran here.
    """
    if not last_runs:
        return "unknown", []
    now = now or datetime.now(UTC)
    intervals = [seconds for seconds in (interval_seconds(job, config) for job in JOBS.values()) if seconds]
    allowed = max(3 * min(intervals, default=0), SCHEDULER_MIN_STALE_SECONDS)
    newest = max(run["started_at"] for run in last_runs.values())
    failing = sorted(job for job, run in last_runs.items() if run["status"] == "failed")
    return ("ok" if (now - newest).total_seconds() <= allowed else "stale"), failing


def _last_job_runs():
    """The last run of every job, or None when the database is unreachable."""
    try:
        with db.transaction() as cur:
            return system_state.scheduler_status(cur)
    except db.UNAVAILABLE_ERRORS:
        db.get_database().discard_idle()
        return None


def snapshot():
    """{overall, components: {name: {label, state, detail}}, scheduler_failing, report, checked_at}."""
    report, _ = health_checks.health_report()
    last_runs = _last_job_runs() if report["database"] == "connected" else None
    scheduler, failing = scheduler_state(last_runs, current_app.config) if last_runs is not None else ("unknown", [])
    states = {
        "api": ("operational", "answering requests"),
        "database": ("operational", "connected") if report["database"] == "connected" else ("outage", "unreachable"),
        "redis": ("operational", "rate limits on") if report["redis"] == "connected" else ("degraded", "unreachable"),
        "openrouter": {
            "connected": ("operational", "model list current"),
            "error": ("degraded", "last model refresh failed"),
        }.get(report["openrouter"], ("unknown", "not configured")),
        "scheduler": {
            "ok": ("operational", "jobs running"),
            "stale": ("degraded", "no recent runs"),
        }.get(scheduler, ("unknown", "no runs recorded")),
    }
    components = {name: {"label": LABELS[name], "state": s, "detail": d} for name, (s, d) in states.items()}
    worst = max(SEVERITY[c["state"]] for c in components.values())
    overall = {0: "operational", 1: "degraded", 2: "outage"}[worst]
    return {
        "overall": overall,
        "components": components,
        "scheduler_failing": failing,
        "report": report,
        "checked_at": datetime.now(UTC),
    }
