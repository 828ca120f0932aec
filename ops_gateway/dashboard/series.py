"""The dashboard's 24-hour series: requests, errors, p95 latency, tokens and cost per 5 minutes.

A closed bucket is aggregated once from usage_records (a created_at index range) into
``usage_5m`` and read back from there; only the buckets still open to late rows (the last
SETTLE_MARGIN) are aggregated live on each read, a few minutes of rows. A page view fills at
most FILL_BUDGET missing buckets, newest first, so a cold start never makes one page slow; the
scheduler's usage_rollup job calls ``fill`` to complete the rest.
"""

from datetime import timedelta

from ops_gateway.dashboard import queries

BUCKET = timedelta(minutes=5)
BUCKETS = 288  # 24 hours
# A settlement's created_at is its transaction's start, committed within seconds.
SETTLE_MARGIN = timedelta(minutes=2)
FILL_BUDGET = 12  # buckets one page view may aggregate (timings in docs/dashboard.md)
FILL_CHUNK = 24  # buckets per statement: each stays well inside the statement timeout
KEEP = timedelta(days=2)


def _window(cur):
    """The 24-hour window by the database clock: first bucket, first open bucket, end."""
    return queries.series_window(cur, BUCKET, BUCKETS, SETTLE_MARGIN)


def _runs(newest_first):
    """Contiguous [start, end) ranges of at most FILL_CHUNK buckets covering the given bucket starts."""
    runs = []
    for start in newest_first:
        if runs and runs[-1][0] - BUCKET == start and runs[-1][1] - start <= BUCKET * FILL_CHUNK:
            runs[-1][0] = start
        else:
            runs.append([start, start + BUCKET])
    return runs


def _fill(cur, window, budget):
    """Write up to ``budget`` (None: all) missing closed buckets, newest first; (filled, still missing)."""
    missing = queries.missing_buckets(cur, window["first_bucket"], window["open_from"], BUCKET)
    chosen = missing if budget is None else missing[:budget]
    for start, end in _runs(chosen):
        queries.fill_buckets(cur, start, end, BUCKET)
    if chosen:
        queries.delete_buckets_before(cur, KEEP)
    return len(chosen), len(missing) - len(chosen)


def fill(cur, budget=None):
    """Complete the stored buckets of the last 24 hours (the scheduler's entry point); {filled, pending}."""
    filled, pending = _fill(cur, _window(cur), budget)
    return {"filled": filled, "pending": pending}


def last_24h(cur, budget=FILL_BUDGET):
    """{"points": 288 buckets oldest first, "pending": buckets not computed yet (their values are None)}."""
    window = _window(cur)
    _, pending = _fill(cur, window, budget)
    rows = queries.stored_buckets(cur, window["first_bucket"], window["open_from"])
    live = queries.live_buckets(cur, window["open_from"], window["window_end"])
    points = []
    for index in range(BUCKETS):
        start = window["first_bucket"] + index * BUCKET
        row = rows.get(start) or live.get(start)
        if row is None and start >= window["open_from"]:
            row = {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0}
        points.append(_point(start, row))
    return {"points": points, "pending": pending}


def _point(start, row):
    """One chart point; all values None for a bucket not computed yet."""
    if row is None:
        return {"bucket_start": start, "requests": None, "errors": None, "tokens": None, "cost": None, "p95_ms": None}
    return {
        "bucket_start": start,
        "requests": row["requests"],
        "errors": row["errors"],
        "tokens": (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0),
        "cost": row["cost"] or 0,
        "p95_ms": row.get("latency_p95_ms"),
    }


def summarise(points):
    """Totals of the series: requests, errors, error rate (%), tokens, cost, and the newest p95.

    The p95 is the newest closed bucket's with traffic; the current bucket's (``p95_partial``) only
    while no closed bucket has any, so in the first minutes of traffic the card shows a figure
    rather than "—" next to the requests it counts.
    """
    known = [p for p in points if p["requests"] is not None]
    requests = sum(p["requests"] for p in known)
    errors = sum(p["errors"] for p in known)
    closed = [p for p in points[:-1] if p["p95_ms"] is not None]
    newest = closed[-1] if closed else points[-1]
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": round(100.0 * errors / requests, 2) if requests else 0.0,
        "tokens": sum(p["tokens"] for p in known),
        "cost": sum((p["cost"] for p in known), start=0),
        "p95_ms": newest["p95_ms"],
        "p95_partial": not closed,
    }
