"""Usage figures for the monitors, from usage_daily_totals and short indexed windows of usage_records.

Nothing here scans history. One user's figures read that user's daily rows (primary key).
System-wide figures read today's rows (day index) plus the days before today, which no longer
change: their totals per (model, endpoint) are cached in Redis per day, each day's built from the
previous cached day plus the days since. Performance figures read at most the last hour of usage_records
through its created_at index.
"""

import json
from datetime import datetime, timedelta
from decimal import Decimal

import redis

from ops_gateway.core import db, redis_store
from ops_gateway.observability import usage_queries

HISTORY_CACHE_KEY = "gw:monitor:usage-by-endpoint-before:{day}"  # rows per (model, endpoint)
HISTORY_CARRY_DAYS = 7
HISTORY_CACHE_SECONDS = (HISTORY_CARRY_DAYS + 1) * 86400
FULL_HISTORY_TIMEOUT = "60s"
RECENT_ACTIVITY_LIMIT = 20
TOP_USERS_LIMIT = 10
SUMMED = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")
SUMMED += tuple(f"{field}_{period}" for period in ("today", "month") for field in ("requests", "tokens", "cost"))


def current_day(cur):
    """Today and the first of this month, by the database's UTC clock (the one settlement uses)."""
    today = usage_queries.utc_today(cur)
    return {"today": today, "month": today.replace(day=1)}


def _newest_cached_history(today):
    """(day, rows) of the most recent history cached in the last HISTORY_CARRY_DAYS days, else (None, None)."""
    days = [today - timedelta(days=back) for back in range(HISTORY_CARRY_DAYS + 1)]
    try:
        cached = redis_store.get_redis().mget([HISTORY_CACHE_KEY.format(day=day.isoformat()) for day in days])
    except redis.RedisError:
        return None, None
    for day, raw in zip(days, cached, strict=True):
        if raw:
            return day, [_decode(row) for row in json.loads(raw)]
    return None, None


def _history_before_today(cur, days):
    """Per-(model, endpoint) totals of every day before today, cached in Redis per day.

    Each day's history is the newest cached one plus the few days since, so only the very first
    computation (or one after a week without any) reads every day of usage_daily_totals.
    """
    today = days["today"]
    cached_day, rows = _newest_cached_history(today)
    if cached_day == today:
        return rows
    if cached_day is None:
        # Once per deployment (or after a week unseen): may read millions of daily rows.
        db.set_local(cur, "statement_timeout", FULL_HISTORY_TIMEOUT)
        rows = usage_queries.usage_by_model_and_endpoint(cur, days, "before_today")
    else:
        if (cached_day.year, cached_day.month) != (today.year, today.month):  # a new month starts from zero
            for row in rows:
                row.update(requests_month=0, tokens_month=0, cost_month=Decimal(0))
        rows = merge(
            rows + usage_queries.usage_by_model_and_endpoint(cur, days, "since", since=cached_day), "model", "endpoint"
        )
    try:
        key = HISTORY_CACHE_KEY.format(day=today.isoformat())
        redis_store.get_redis().set(key, json.dumps(rows, default=_encode), ex=HISTORY_CACHE_SECONDS)
    except redis.RedisError:
        pass  # the next call recomputes
    return rows


def _encode(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _decode(row):
    """A cached row back to Decimal costs and an aware timestamp."""
    for field in ("cost", "cost_today", "cost_month"):
        row[field] = Decimal(row[field])
    if row["last_request_at"]:
        row["last_request_at"] = datetime.fromisoformat(row["last_request_at"])
    return row


def merge(rows, *dimensions):
    """One row per value of ``dimensions`` (such as model): the counters added up, the latest
    last_request_at kept."""
    groups = {}
    for row in rows:
        group = {name: row[name] for name in dimensions}
        entry = groups.setdefault(tuple(group.values()), dict.fromkeys(SUMMED, 0) | group | {"last_request_at": None})
        for field in SUMMED:
            entry[field] += row[field] or 0
        last = row["last_request_at"]
        if last is not None and (entry["last_request_at"] is None or last > entry["last_request_at"]):
            entry["last_request_at"] = last
    return list(groups.values())


def summarise(rows):
    """The usage_metrics document from per-(model, endpoint) rows (several rows per pair are added up)."""
    by_model = sorted(merge(rows, "model"), key=lambda m: (-m["requests"], m["model"]))
    by_endpoint = sorted(merge(rows, "endpoint"), key=lambda e: (-e["requests"], e["endpoint"]))
    totals = {field: sum((m[field] for m in by_model), start=0) for field in SUMMED}
    tokens = totals["prompt_tokens"] + totals["completion_tokens"]
    last_times = [m["last_request_at"] for m in by_model if m["last_request_at"] is not None]
    return {
        "total_requests": totals["requests"],
        "total_tokens": tokens,
        "total_cost": Decimal(totals["cost"]),
        **_today_and_this_month(totals),
        "average_tokens_per_request": round(tokens / totals["requests"], 2) if totals["requests"] else 0.0,
        "most_used_model": by_model[0]["model"] if by_model else None,
        "last_request_time": max(last_times) if last_times else None,
        "by_model": [_model_entry(m) for m in by_model],
        "by_endpoint": [_endpoint_entry(e) for e in by_endpoint],
    }


def _model_entry(entry):
    return {
        "model": entry["model"],
        "requests": entry["requests"],
        "errors": entry["errors"],
        "prompt_tokens": entry["prompt_tokens"],
        "completion_tokens": entry["completion_tokens"],
        "total_tokens": entry["prompt_tokens"] + entry["completion_tokens"],
        "cost": Decimal(entry["cost"]),
        "requests_today": entry["requests_today"],
        "cost_today": Decimal(entry["cost_today"]),
        "last_request_time": entry["last_request_at"],
    }


def _endpoint_entry(entry):
    return {
        "endpoint": entry["endpoint"],
        "requests": entry["requests"],
        "total_tokens": entry["prompt_tokens"] + entry["completion_tokens"],
        "cost": Decimal(entry["cost"]),
        **_today_and_this_month(entry),
    }


def _today_and_this_month(figures):
    """The day's and the month's requests, tokens and cost under their API names."""
    return {
        "requests_today": figures["requests_today"],
        "tokens_today": figures["tokens_today"],
        "cost_today": Decimal(figures["cost_today"]),
        "requests_this_month": figures["requests_month"],
        "tokens_this_month": figures["tokens_month"],
        "cost_this_month": Decimal(figures["cost_month"]),
    }


def user_usage(cur, user_id):
    """One user's usage_metrics (all time, this month, today, per model and per endpoint)."""
    days = current_day(cur)
    return summarise(usage_queries.usage_by_model_and_endpoint(cur, days, "user", user_id=user_id))


def system_usage(cur):
    """(usage_metrics across all users, number of users active today)."""
    days = current_day(cur)
    rows = _history_before_today(cur, days) + usage_queries.usage_by_model_and_endpoint(cur, days, "today")
    return summarise(rows), usage_queries.active_users_on(cur, days["today"])


def top_users_today(cur, limit=TOP_USERS_LIMIT):
    """The heaviest users today by requests, each with the mask of their most recently used key."""
    return usage_queries.top_users_on(cur, current_day(cur)["today"], limit)


def top_orgs_today(cur, limit=TOP_USERS_LIMIT):
    """The heaviest orgs today by requests, and how many orgs there are."""
    return usage_queries.org_count(cur), usage_queries.top_orgs_on(cur, current_day(cur)["today"], limit)


def response_cache_hits(cur):
    """The response cache's share of the last hour's requests (percent)."""
    row = usage_queries.cache_hits_last_hour(cur)
    return {**row, "hit_rate_1h": _percent(row["hits_1h"], row["requests_1h"])}


def recent_activity(cur, limit=RECENT_ACTIVITY_LIMIT):
    """The newest completions of the last hour."""
    return usage_queries.recent_completions(cur, limit)


def recent_performance(cur):
    """Throughput, error rates (percent) and latency percentiles of completions over the last 1/5/60 minutes."""
    row = usage_queries.recent_windows(cur)
    return {
        "requests_per_second_1m": round(row["requests_1m"] / 60, 3),
        "requests_5m": row["requests_5m"],
        "requests_1h": row["requests_1h"],
        "error_rate_5m": _percent(row["errors_5m"], row["requests_5m"]),
        "error_rate_1h": _percent(row["errors_1h"], row["requests_1h"]),
        # What the error-rate alert watches: failures not caused by the client's request.
        "failure_rate_5m": _percent(row["failures_5m"], row["requests_5m"]),
        "latency_ms": _percentiles(row["latency"]),
        "upstream_latency_ms": _percentiles(row["upstream_latency"]),
    }


def _percent(part, whole):
    return round(100.0 * part / whole, 2) if whole else 0.0


def _percentiles(values):
    values = values or [None, None, None]
    return {name: None if v is None else round(v, 1) for name, v in zip(("p50", "p95", "p99"), values, strict=True)}


def upstream_reconciliation(cur):
    """Our cost against upstream's reported cost of the same requests, today and this month;
    ``drift`` is ours minus upstream's (positive: we charged more)."""
    row = usage_queries.reconciliation(cur, current_day(cur))
    return {
        period: {
            "upstream_reported_requests": row[f"requests_{period}"],
            "cost": row[f"cost_{period}"],
            "upstream_cost": row[f"upstream_cost_{period}"],
            "drift": row[f"cost_{period}"] - row[f"upstream_cost_{period}"],
        }
        for period in ("today", "month")
    }
