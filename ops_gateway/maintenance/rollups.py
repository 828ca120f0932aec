"""Usage rollups: hourly and daily aggregates per user and model, recomputed from usage_records,
and the spend reports' daily rollups per (user, key, billed model, endpoint) and per tag over the
same days.

A window is recomputed by deleting its buckets and inserting them again in one transaction, so
rerunning a window always gives the same rows and readers never see it half-written. Each run
covers the current (partial) bucket, a lookback for late rows, and any gap since the newest
bucket written (capped by MAX_BACKFILL), so a clock that was down catches up by itself.
"""

from datetime import UTC, datetime, timedelta

from ops_gateway.core import db
from ops_gateway.maintenance import queries

GRANULARITIES = ("hour", "day")
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
LOOKBACK = {"hour": timedelta(hours=2), "day": timedelta(days=1)}  # rows written late still count
MAX_BACKFILL = {"hour": timedelta(days=7), "day": timedelta(days=62)}
STATEMENT_TIMEOUT = "5min"  # a backfill reads up to MAX_BACKFILL of usage_records


def truncate(moment, granularity):
    """The start of the UTC hour or day containing ``moment``."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def recompute(cur, granularity, start, end):
    """Rebuild every bucket in [start, end) of one granularity; return the rows written."""
    db.set_local(cur, "statement_timeout", STATEMENT_TIMEOUT)
    return queries.rewrite_rollups(cur, granularity, start, end)


def window(cur, granularity, now):
    """[start, end) the next run should recompute for one granularity."""
    end = truncate(now, granularity) + STEP[granularity]
    newest = queries.newest_rollup_bucket(cur, granularity) or end - MAX_BACKFILL[granularity]
    start = min(newest, truncate(now, granularity) - LOOKBACK[granularity])
    return max(start, end - MAX_BACKFILL[granularity]), end


def roll_up(cur, now=None):
    """Recompute the recent window of every granularity; return what was written."""
    now = now or datetime.now(UTC)
    report = {}
    windows = {granularity: window(cur, granularity, now) for granularity in GRANULARITIES}
    for granularity, (start, end) in windows.items():
        rows = recompute(cur, granularity, start, end)
        report[granularity] = {"start": start.isoformat(), "end": end.isoformat(), "rows": rows}
    # The report rollups follow the daily window: today (partial, so reports lag by at most one
    # run), the lookback for late rows, and any gap the daily rollup is catching up on.
    start, end = windows["day"]
    rows, watermark = queries.rewrite_report_days(cur, start, end)
    report["report_days"] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": rows,
        "rolled_up_at": watermark.isoformat(),
    }
    return report
