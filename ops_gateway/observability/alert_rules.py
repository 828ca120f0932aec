"""Alert rules, evaluated every minute by the scheduler's ``evaluate_alerts`` job.

Each rule measures one value and fires its alert while the value is past its threshold, or
resolves it once it is not (``alerts`` keeps one row and one message per incident).
Thresholds are settings (defaults in README.md):

==================== ============================================= ==============================
rule                 measures                                      fires when
==================== ============================================= ==============================
error_rate           % of completions failed, last 5 min (*)       > ALERT_ERROR_RATE_PERCENT
p95_latency          p95 gateway latency of completions, 5 min     > ALERT_P95_LATENCY_MS
health_status        the /health status                            not "healthy"
db_pool_saturation   busiest web process's pool use, %             > ALERT_POOL_SATURATION_PERCENT
cpu_usage            highest host CPU % among web processes        > ALERT_CPU_PERCENT
memory_usage         highest host memory % among web processes     > ALERT_MEMORY_PERCENT
auth_failure_surge   failed authentications, last 5 min            > ALERT_AUTH_FAILURES_5M
rate_limit_surge     rate-limit 429s, last 5 min                   > ALERT_RATE_LIMITED_5M
==================== ============================================= ==============================

(*) failed by the gateway or upstream: upstream refusing the client's own body (400/422,
``bad_request``) or its moderation flagging the input (403, ``flagged``) is the client's error
and does not count, so no client can fire it at will; a
body the gateway refuses itself (invalid JSON, a non-finite number, bad fields) never reaches
upstream nor a usage record, so it cannot count either.

The two latency/error rules need MIN_COMPLETIONS in the window, so one failure out of two
requests is not an incident. A rule whose data cannot be read this minute is left as it is.
The same pass runs the suspicious-activity detector.
"""

import logging
from dataclasses import dataclass

import redis
from flask import current_app

from ops_gateway.core import db
from ops_gateway.observability import health_checks, security_events, system_state, usage_metrics
from ops_gateway.telemetry import alerts

logger = logging.getLogger("ops_gateway.app")

MIN_COMPLETIONS = 20
SURGE_WINDOW_MINUTES = 5


@dataclass(frozen=True)
class Reading:
    """One rule's measurement this minute."""

    rule: str
    firing: bool
    message: str
    value: float | None = None
    threshold: float | None = None
    severity: str = "warning"
    details: dict | None = None


def _performance_readings(config):
    with db.transaction() as cur:
        perf = usage_metrics.recent_performance(cur)
    enough = perf["requests_5m"] >= MIN_COMPLETIONS
    p95 = perf["latency_ms"]["p95"]
    window = {"completions_5m": perf["requests_5m"]}
    return [
        Reading(
            "error_rate",
            enough and perf["failure_rate_5m"] > config["ALERT_ERROR_RATE_PERCENT"],
            f"{perf['failure_rate_5m']:g}% of completions failed upstream in the last 5 minutes",
            perf["failure_rate_5m"],
            config["ALERT_ERROR_RATE_PERCENT"],
            "critical",
            window,
        ),
        Reading(
            "p95_latency",
            enough and p95 is not None and p95 > config["ALERT_P95_LATENCY_MS"],
            f"p95 latency of completions is {p95 or 0:g} ms over the last 5 minutes",
            p95,
            config["ALERT_P95_LATENCY_MS"],
            details={**window, "upstream_latency_ms": perf["upstream_latency_ms"]},
        ),
    ]


def _health_readings(config):
    report, _ = health_checks.health_report()
    dependencies = {name: report[name] for name in ("database", "redis", "openrouter")}
    # An unset upstream key is a setup state (make run without one), said at start-up and by
    # /health, not an outage to page about; with anything else wrong the alert fires as before.
    setup_only = report["reasons"] == [health_checks.UNCONFIGURED_REASON]
    return [
        Reading(
            "health_status",
            report["status"] != "healthy" and not setup_only,
            f"gateway is {report['status']}: " + ", ".join(f"{k} {v}" for k, v in dependencies.items()),
            severity="critical" if report["status"] == "unhealthy" else "warning",
            details=dependencies,
        )
    ]


def _resource_readings(config):
    samples = system_state.deployment_samples()
    if not samples:
        return []  # no web process reported in the last minute and a half: nothing to judge
    pool = max(samples, key=lambda s: s["pool_in_use"] / s["pool_max"] if s["pool_max"] else 0)
    pool_percent = round(100.0 * pool["pool_in_use"] / pool["pool_max"], 1) if pool["pool_max"] else 0.0
    cpu = max(samples, key=lambda s: s["cpu_percent"])
    memory = max(samples, key=lambda s: s["memory_percent"])
    processes = {"processes_reporting": len(samples)}
    return [
        Reading(
            "db_pool_saturation",
            pool_percent > config["ALERT_POOL_SATURATION_PERCENT"],
            f"{pool['pool_in_use']} of {pool['pool_max']} pooled connections in use on {pool['process']}",
            pool_percent,
            config["ALERT_POOL_SATURATION_PERCENT"],
            details=processes,
        ),
        Reading(
            "cpu_usage",
            cpu["cpu_percent"] > config["ALERT_CPU_PERCENT"],
            f"CPU at {cpu['cpu_percent']:g}% on the host of {cpu['process']}",
            cpu["cpu_percent"],
            config["ALERT_CPU_PERCENT"],
            details=processes,
        ),
        Reading(
            "memory_usage",
            memory["memory_percent"] > config["ALERT_MEMORY_PERCENT"],
            f"memory at {memory['memory_percent']:g}% on the host of {memory['process']}",
            memory["memory_percent"],
            config["ALERT_MEMORY_PERCENT"],
            details=processes,
        ),
    ]


def _surge_readings(config):
    with db.transaction() as cur:
        auth_failures = security_events.auth_failures_since(cur, SURGE_WINDOW_MINUTES)
        rate_limited = security_events.rate_limit_rejections_since(cur, SURGE_WINDOW_MINUTES)
    return [
        Reading(
            "auth_failure_surge",
            auth_failures > config["ALERT_AUTH_FAILURES_5M"],
            f"{auth_failures} failed authentications in the last 5 minutes",
            auth_failures,
            config["ALERT_AUTH_FAILURES_5M"],
        ),
        Reading(
            "rate_limit_surge",
            rate_limited > config["ALERT_RATE_LIMITED_5M"],
            f"{rate_limited} requests rejected by rate limits in the last 5 minutes",
            rate_limited,
            config["ALERT_RATE_LIMITED_5M"],
        ),
    ]


READERS = (_performance_readings, _health_readings, _resource_readings, _surge_readings)
READ_ERRORS = (*db.UNAVAILABLE_ERRORS, redis.RedisError)


def evaluate_alert_rules():
    """Measure every rule, fire or resolve its alert, flag suspicious users, then send every firing
    message still owed (this run's and earlier ones', each tried once per run); return what was found."""
    config = current_app.config
    outcome = {}
    for reader in READERS:
        try:
            readings = reader(config)
        except READ_ERRORS as exc:
            # Unreadable is not "fine": leave this reader's alerts as they are until the next minute.
            logger.warning("alert rule data unavailable", extra={"reader": reader.__name__, "error": repr(exc)})
            continue
        for reading in readings:
            if reading.firing:
                alerts.fire_alert(
                    reading.rule,
                    reading.message,
                    reading.severity,
                    reading.value,
                    reading.threshold,
                    reading.details,
                    announce=False,  # announce_pending below sends it
                )
            else:
                alerts.resolve_alert(reading.rule)
            outcome[reading.rule] = "firing" if reading.firing else "ok"
    outcome["suspicious_users"] = security_events.detect_suspicious_activity()
    outcome["alerts_announced"] = alerts.announce_pending()
    return outcome
