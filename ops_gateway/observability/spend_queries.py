"""The spend reports' SQL: sums over the daily report rollups (sql/0017, 0018) and the caller's last requests.

Plain functions taking the cursor first and returning rows as dicts. Grouping columns come from
``spend_reports.DIMENSIONS`` (code's own names), never from a client.
"""

from ops_gateway.core.sql_where import Where

# Key and user names are looked up after grouping: one join per group, not per rollup row.
_REPORT = """
SELECT g.*{labels}
FROM (SELECT {columns}, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
             sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
             sum(cost) AS cost, sum(latency_ms_sum) / nullif(sum(requests), 0) AS avg_latency_ms
      FROM {table} WHERE {where} GROUP BY {columns}) g
{joins}
ORDER BY {order} LIMIT %s
"""
_KEY_LABELS = (", k.name AS key_name, k.prefix, k.last4", "LEFT JOIN api_keys k ON k.id = g.api_key_id")
_USER_LABELS = (", u.email", "LEFT JOIN users u ON u.id = g.user_id")

_LAST_REQUESTS = """
SELECT id, request_id, created_at, api_key_id, endpoint, model, served_model, status, error_code, prompt_tokens,
       completion_tokens, total_tokens, cost, latency_ms, tags
FROM usage_records WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s
"""


def grouped_usage(cur, columns, by_tag, first_day, last_day, filters, limit=None):
    """Sums per group of ``columns`` over the days [first_day, last_day] of the rows matching ``filters``
    ({rollup column: value}, None: any), such as one user's or one endpoint's.

    ``by_tag`` reads the per-tag rollup (a request with two tags counts under both).
    """
    table = "usage_tag_daily" if by_tag else "usage_key_daily"
    where = Where().equal_all(filters).between("day", first_day, last_day)
    labels = [_KEY_LABELS] if "api_key_id" in columns else []
    labels += [_USER_LABELS] if "user_id" in columns else []
    statement = _REPORT.format(
        columns=", ".join(columns),
        labels="".join(label for label, _ in labels),
        joins="\n".join(join for _, join in labels),
        table=table,
        where=where.sql,
        order=", ".join(f"g.{column}" for column in columns),
    )
    cur.execute(statement, where.params + [limit])
    return cur.fetchall()


def newest_rollup_time(cur):
    """When the newest day of the report rollups was last computed, or None before the first run."""
    cur.execute(
        "SELECT max(computed_at) AS computed_at FROM usage_key_daily WHERE day = (SELECT max(day) FROM usage_key_daily)"
    )
    return cur.fetchone()["computed_at"]


def last_requests(cur, user_id, endpoint, start, end, limit, cursor=None):
    """A user's usage records in [start, end) (one endpoint's, unless None), newest first, a page of
    ``limit`` after ``cursor``."""
    where = Where().equal_all({"user_id": user_id, "endpoint": endpoint}).between("created_at", start, end, False)
    where = where.older_than_cursor(cursor)
    cur.execute(_LAST_REQUESTS.format(where=where.sql), where.params + [limit])
    return cur.fetchall()
