"""Usage rollups: hourly and daily aggregates per user and model, recomputed from usage_records.

A window is recomputed by deleting its buckets and inserting them again in one transaction, so
rerunning a window always gives the same rows and readers never see it half-written. Each run
covers the current (partial) bucket, a lookback for late rows, and any gap since the newest
bucket written (capped by MAX_BACKFILL), so a clock that was down catches up by itself.
"""

from datetime import UTC, datetime, timedelta

GRANULARITIES = ("hour", "day")
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
LOOKBACK = {"hour": timedelta(hours=2), "day": timedelta(days=1)}  # rows written late still count
MAX_BACKFILL = {"hour": timedelta(days=7), "day": timedelta(days=62)}
STATEMENT_TIMEOUT = "5min"  # a backfill reads up to MAX_BACKFILL of usage_records

_DELETE_WINDOW = """
DELETE FROM usage_rollups WHERE granularity = %(granularity)s
  AND bucket_start >= %(start)s AND bucket_start < %(end)s
"""

_INSERT_WINDOW = """
INSERT INTO usage_rollups (granularity, bucket_start, user_id, model, requests, errors,
                           prompt_tokens, completion_tokens, cost, latency_ms_sum)
SELECT %(granularity)s, date_trunc(%(granularity)s, created_at, 'UTC'), user_id, model,
       count(*), count(*) FILTER (WHERE status <> 'success'),
       sum(prompt_tokens), sum(completion_tokens), sum(cost), sum(latency_ms)
FROM usage_records
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 2, 3, 4
"""


def truncate(moment, granularity):
    """The start of the UTC hour or day containing ``moment``."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def recompute(cur, granularity, start, end):
    """Rebuild every bucket in [start, end) of one granularity; return the rows written."""
    params = {"granularity": granularity, "start": start, "end": end}
    cur.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
    cur.execute(_DELETE_WINDOW, params)
    cur.execute(_INSERT_WINDOW, params)
    return cur.rowcount


def window(cur, granularity, now):
    """[start, end) the next run should recompute for one granularity."""
    end = truncate(now, granularity) + STEP[granularity]
    cur.execute("SELECT max(bucket_start) AS newest FROM usage_rollups WHERE granularity = %s", (granularity,))
    newest = cur.fetchone()["newest"] or end - MAX_BACKFILL[granularity]
    start = min(newest, truncate(now, granularity) - LOOKBACK[granularity])
    return max(start, end - MAX_BACKFILL[granularity]), end


def roll_up(cur, now=None):
    """Recompute the recent window of every granularity; return what was written."""
    now = now or datetime.now(UTC)
    report = {}
    for granularity in GRANULARITIES:
        start, end = window(cur, granularity, now)
        rows = recompute(cur, granularity, start, end)
        report[granularity] = {"start": start.isoformat(), "end": end.isoformat(), "rows": rows}
    return report
