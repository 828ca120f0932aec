"""The dashboard's 24-hour series: requests, errors, p95 latency, tokens and cost per 5 minutes.

A closed bucket is aggregated once from usage_records (a created_at index range) into
``usage_5m`` and read back from there; only the buckets still open to late rows (the last
SETTLE_MARGIN) are aggregated live on each read, a few minutes of rows. A page view fills at
most FILL_BUDGET missing buckets, newest first, so a cold start never makes one page slow; the
scheduler's usage_rollup job calls ``fill`` to complete the rest.
"""

from datetime import timedelta

BUCKET = timedelta(minutes=5)
BUCKETS = 288  # 24 hours
# A settlement's created_at is its transaction's start, committed within seconds.
SETTLE_MARGIN = timedelta(minutes=2)
FILL_BUDGET = 12  # 30-80 ms of aggregation with a million rows a day
FILL_CHUNK = 24  # buckets per statement: each stays well inside the statement timeout
KEEP = timedelta(days=2)

_WINDOW = """
SELECT date_bin('5 minutes', now(), TIMESTAMPTZ 'epoch') - %(bucket)s * (%(buckets)s - 1) AS first_bucket,
       date_bin('5 minutes', now() - %(margin)s, TIMESTAMPTZ 'epoch') AS open_from,
       date_bin('5 minutes', now(), TIMESTAMPTZ 'epoch') + %(bucket)s AS window_end
"""

_MISSING = """
SELECT b AS bucket_start FROM generate_series(%(first)s, %(open_from)s - %(bucket)s, %(bucket)s) AS b
WHERE NOT EXISTS (SELECT 1 FROM usage_5m u WHERE u.bucket_start = b)
ORDER BY b DESC
"""

_AGGREGATE = """
SELECT date_bin('5 minutes', created_at, TIMESTAMPTZ 'epoch') AS bucket_start, count(*) AS requests,
       count(*) FILTER (WHERE status <> 'success') AS errors, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cost) AS cost,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms
FROM usage_records WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1
"""

# Empty buckets get a row too, so they are never looked for again.
_FILL = f"""
INSERT INTO usage_5m (bucket_start, requests, errors, prompt_tokens, completion_tokens, cost, latency_p95_ms)
SELECT g.b, coalesce(a.requests, 0), coalesce(a.errors, 0), coalesce(a.prompt_tokens, 0),
       coalesce(a.completion_tokens, 0), coalesce(a.cost, 0), a.latency_p95_ms
FROM generate_series(%(start)s, %(end)s - %(bucket)s, %(bucket)s) AS g(b)
LEFT JOIN ({_AGGREGATE}) a ON a.bucket_start = g.b
ON CONFLICT (bucket_start) DO NOTHING
"""

_STORED = """
SELECT bucket_start, requests, errors, prompt_tokens, completion_tokens, cost, latency_p95_ms
FROM usage_5m WHERE bucket_start >= %(first)s AND bucket_start < %(open_from)s
"""


def _window(cur):
    """The 24-hour window by the database clock: first bucket, first open bucket, end."""
    cur.execute(_WINDOW, {"bucket": BUCKET, "buckets": BUCKETS, "margin": SETTLE_MARGIN})
    row = cur.fetchone()
    return {**row, "bucket": BUCKET}


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
    cur.execute(_MISSING, {**window, "first": window["first_bucket"]})
    missing = [row["bucket_start"] for row in cur.fetchall()]
    chosen = missing if budget is None else missing[:budget]
    for start, end in _runs(chosen):
        cur.execute(_FILL, {"start": start, "end": end, "bucket": BUCKET})
    if chosen:
        cur.execute("DELETE FROM usage_5m WHERE bucket_start < now() - %s", (KEEP,))
    return len(chosen), len(missing) - len(chosen)


def fill(cur, budget=None):
    """Complete the stored buckets of the last 24 hours (the scheduler's entry point); {filled, pending}."""
    filled, pending = _fill(cur, _window(cur), budget)
    return {"filled": filled, "pending": pending}


def last_24h(cur, budget=FILL_BUDGET):
    """{"points": 288 buckets oldest first, "pending": buckets not computed yet (their values are None)}."""
    window = _window(cur)
    _, pending = _fill(cur, window, budget)
    cur.execute(_STORED, {**window, "first": window["first_bucket"]})
    rows = {row["bucket_start"]: row for row in cur.fetchall()}
    cur.execute(_AGGREGATE, {"start": window["open_from"], "end": window["window_end"]})
    live = {row["bucket_start"]: row for row in cur.fetchall()}
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
    """Totals of the series: requests, errors, error rate (%), tokens, cost, and the newest closed p95."""
    known = [p for p in points if p["requests"] is not None]
    requests = sum(p["requests"] for p in known)
    errors = sum(p["errors"] for p in known)
    p95s = [p["p95_ms"] for p in points[:-1] if p["p95_ms"] is not None]
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": round(100.0 * errors / requests, 2) if requests else 0.0,
        "tokens": sum(p["tokens"] for p in known),
        "cost": sum((p["cost"] for p in known), start=0),
        "p95_ms": p95s[-1] if p95s else None,
    }
