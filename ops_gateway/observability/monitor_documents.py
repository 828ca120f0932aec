"""The /user/monitor and /admin/monitor documents, assembled from cheap reads only."""

import logging
from datetime import UTC, datetime

import redis

from ops_gateway.accounts import key_material
from ops_gateway.billing import budgets
from ops_gateway.core import db
from ops_gateway.limits import window_status as rate_limit_status
from ops_gateway.observability import queries, system_state, usage_metrics
from ops_gateway.upstream import catalog as model_catalog

logger = logging.getLogger("ops_gateway.app")


def _now():
    return datetime.now(UTC).isoformat()


def _masked(row):
    """A top-user row with its key's mask in place of the key's prefix and last four characters."""
    prefix, last4 = row.pop("prefix"), row.pop("last4")
    return {**row, "api_key": key_material.mask(prefix, last4) if prefix else None}


def user_monitor(principal):
    """The caller's usage (from daily totals), balance, spend caps and rate-limit windows."""
    with db.transaction() as cur:
        usage = usage_metrics.user_usage(cur, principal["user_id"])
        caps = budgets.status(cur, principal) if principal["budgeted"] else []
    try:
        windows = rate_limit_status.window_status(principal)
    except redis.RedisError:
        logger.warning("rate-limit windows unavailable for /user/monitor")
        windows = {}
    return {
        "status": "success",
        "timestamp": _now(),
        "user_id": principal["user_id"],
        "api_key": principal["key_mask"],
        "current_credits": principal["credits"],
        "plan": principal["plan"],
        "budgets": caps,
        "usage_metrics": usage,
        "rate_limits": windows,
    }


def admin_monitor():
    """System usage, performance, billing reconciliation, cache, database, resources, scheduler and alerts."""
    with db.transaction() as cur:
        usage, active_today = usage_metrics.system_usage(cur)
        total_users = queries.table_count(cur, "users")
        top_users = [_masked(row) for row in usage_metrics.top_users_today(cur)]
        total_orgs, top_orgs = usage_metrics.top_orgs_today(cur)
        recent = usage_metrics.recent_activity(cur)
        response_cache = usage_metrics.response_cache_hits(cur)
        performance = usage_metrics.recent_performance(cur)
        billing = usage_metrics.upstream_reconciliation(cur)
        database = system_state.database_status(cur)
        scheduler = system_state.scheduler_status(cur)
        alerts = system_state.active_alerts(cur)
    return {
        "status": "success",
        "timestamp": _now(),
        "data": {
            "total_users": total_users,
            "active_users_today": active_today,
            "total_requests_today": usage["requests_today"],
            "total_tokens_today": usage["tokens_today"],
            "total_cost_today": usage["cost_today"],
            "system_usage_metrics": usage,
            "top_users_by_usage": top_users,
            "total_orgs": total_orgs,
            "top_orgs_by_usage": top_orgs,
            "recent_activity": recent,
            "performance": performance,
            "billing": billing,
            "cache": model_catalog.cache_status(),
            "response_cache": response_cache,
            "database": database,
            "resources": system_state.process_resources(),
            "scheduler": scheduler,
            "alerts": alerts,
        },
    }
