"""The dashboard domain's SQL: session re-checks, OIDC sign-in's user lookup, cached models, the 5-minute series.

Plain functions taking the cursor first and returning rows as dicts.
"""

# The signed-in user is still an admin and the key they signed in with is still usable, by the
# API's own rule (``api_key_rejection``, sql/0008): revoking or rotating that key, or suspending
# the user, ends the dashboard sessions it opened as it ends API use. The key's scopes, as they
# are now, decide what the session may do (``auth.admin_scope``).
_SESSION_ADMIN = """
SELECT u.email, k.scopes FROM users u JOIN api_keys k ON k.user_id = u.id
WHERE u.id = %s AND k.id = %s AND u.role = 'admin'
  AND api_key_rejection(k.status, k.grace_until, k.expires_at, u.status) IS NULL
"""


def session_admin(cur, user_id, api_key_id):
    """The admin's email and the key's scopes when this user may still use the dashboard with this key, else None."""
    cur.execute(_SESSION_ADMIN, (user_id, api_key_id))
    return cur.fetchone()


# OIDC sign-in names a user by email (unique case-insensitively, users_email_key); its sessions
# hold no key, so only the user's role and status (and that the email is still theirs) are re-checked.
_USER_BY_EMAIL = "SELECT id, email, role, status FROM users WHERE lower(email) = lower(%s)"
_SESSION_OIDC_ADMIN = """
SELECT email FROM users WHERE id = %s AND lower(email) = lower(%s) AND role = 'admin' AND status = 'active'
"""


def user_by_email(cur, email):
    """The user (id, email, role, status) with this email in any case, or None."""
    cur.execute(_USER_BY_EMAIL, (email,))
    return cur.fetchone()


def session_oidc_admin(cur, user_id, email):
    """The admin's email when this user still has that email and is an active admin, else None."""
    cur.execute(_SESSION_OIDC_ADMIN, (user_id, email))
    return cur.fetchone()


# The 5-minute series: the window of the last 24 hours by the database clock, the closed buckets
# stored in usage_5m, and the live aggregate of usage_records for the buckets still open.

_SERIES_WINDOW = """
SELECT date_bin('5 minutes', now(), TIMESTAMPTZ 'epoch') - %(bucket)s * (%(buckets)s - 1) AS first_bucket,
       date_bin('5 minutes', now() - %(margin)s, TIMESTAMPTZ 'epoch') AS open_from,
       date_bin('5 minutes', now(), TIMESTAMPTZ 'epoch') + %(bucket)s AS window_end
"""

_MISSING_BUCKETS = """
SELECT b AS bucket_start FROM generate_series(%(first)s, %(open_from)s - %(bucket)s, %(bucket)s) AS b
WHERE NOT EXISTS (SELECT 1 FROM usage_5m u WHERE u.bucket_start = b)
ORDER BY b DESC
"""

_AGGREGATE_BUCKETS = """
SELECT date_bin('5 minutes', created_at, TIMESTAMPTZ 'epoch') AS bucket_start, count(*) AS requests,
       count(*) FILTER (WHERE status <> 'success') AS errors, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cost) AS cost,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms
FROM usage_records WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1
"""

# Empty buckets get a row too, so they are never looked for again.
_FILL_BUCKETS = f"""
INSERT INTO usage_5m (bucket_start, requests, errors, prompt_tokens, completion_tokens, cost, latency_p95_ms)
SELECT g.b, coalesce(a.requests, 0), coalesce(a.errors, 0), coalesce(a.prompt_tokens, 0),
       coalesce(a.completion_tokens, 0), coalesce(a.cost, 0), a.latency_p95_ms
FROM generate_series(%(start)s, %(end)s - %(bucket)s, %(bucket)s) AS g(b)
LEFT JOIN ({_AGGREGATE_BUCKETS}) a ON a.bucket_start = g.b
ON CONFLICT (bucket_start) DO NOTHING
"""

_STORED_BUCKETS = """
SELECT bucket_start, requests, errors, prompt_tokens, completion_tokens, cost, latency_p95_ms
FROM usage_5m WHERE bucket_start >= %(first)s AND bucket_start < %(open_from)s
"""


def series_window(cur, bucket, buckets, margin):
    """{first_bucket, open_from, window_end}: ``buckets`` buckets ending with the current one; those
    starting at or after open_from may still get rows (within ``margin``)."""
    cur.execute(_SERIES_WINDOW, {"bucket": bucket, "buckets": buckets, "margin": margin})
    return cur.fetchone()


def missing_buckets(cur, first, open_from, bucket):
    """Starts of the closed buckets in [first, open_from) not stored yet, newest first."""
    cur.execute(_MISSING_BUCKETS, {"first": first, "open_from": open_from, "bucket": bucket})
    return [row["bucket_start"] for row in cur.fetchall()]


def fill_buckets(cur, start, end, bucket):
    """Aggregate and store every bucket in [start, end) (empty ones too)."""
    cur.execute(_FILL_BUCKETS, {"start": start, "end": end, "bucket": bucket})


def delete_buckets_before(cur, age):
    """Drop stored buckets older than ``age`` (an interval)."""
    cur.execute("DELETE FROM usage_5m WHERE bucket_start < now() - %s", (age,))


def stored_buckets(cur, first, open_from):
    """Stored buckets in [first, open_from), by bucket start."""
    cur.execute(_STORED_BUCKETS, {"first": first, "open_from": open_from})
    return {row["bucket_start"]: row for row in cur.fetchall()}


def live_buckets(cur, start, end):
    """Buckets in [start, end) aggregated from usage_records now, by bucket start."""
    cur.execute(_AGGREGATE_BUCKETS, {"start": start, "end": end})
    return {row["bucket_start"]: row for row in cur.fetchall()}


def cached_models(cur):
    """The shared catalogue's models (as the last good refresh stored them), sorted by id."""
    cur.execute(
        "SELECT m->>'id' AS id, m->>'name' AS name, (m->>'context_length')::numeric AS context_length,"
        " (m->'pricing'->>'prompt')::numeric AS prompt_price,"
        " (m->'pricing'->>'completion')::numeric AS completion_price"
        " FROM model_catalog, jsonb_array_elements(models) AS m WHERE model_catalog.id = 1 ORDER BY 1"
    )
    return cur.fetchall()
