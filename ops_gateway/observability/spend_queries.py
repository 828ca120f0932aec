"""The spend reports' SQL: sums over the daily report rollups (sql/0017, 0018), with the usage
records after their watermark when a report asks to be fresh (sql/0023), and the caller's last requests.

Plain functions taking the cursor first and returning rows as dicts. Grouping columns come from
``spend_reports.DIMENSIONS`` (code's own names), never from a client.
"""

from ops_gateway.core.sql_where import Where

# Key and user names are looked up after grouping: one join per group, not per rollup row.
_REPORT = """
SELECT g.*{labels}
FROM (SELECT {columns}, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
             sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
             sum(cost) AS cost,
             round((sum(latency_ms_sum) / nullif(sum(requests), 0))::numeric, 2) AS avg_latency_ms
      FROM {table} WHERE {where} GROUP BY {columns}) g
{joins}
ORDER BY {order} LIMIT %s
"""
# A fresh report's rows: the rollup's, then the records created since its watermark (every record
# before the first rollup) within [start, end), as the rollup would have counted them.
_FRESH_ROWS = """(
SELECT {columns} FROM {table}
UNION ALL
SELECT {columns} FROM {records}
WHERE created_at >= coalesce((SELECT rolled_up_at FROM report_rollup_watermark), '-infinity')
  AND created_at >= %s AND created_at < %s
) fresh"""
_ROLLUP_COLUMNS = (
    "day, user_id, api_key_id, model, endpoint, requests, errors, prompt_tokens, completion_tokens, cost,"
    " latency_ms_sum, org_id"
)
_SOURCES = {False: ("usage_key_daily", "usage_report_records"), True: ("usage_tag_daily", "usage_report_tag_records")}
_KEY_LABELS = (", k.name AS key_name, k.prefix, k.last4", "LEFT JOIN api_keys k ON k.id = g.api_key_id")
_USER_LABELS = (", u.email", "LEFT JOIN users u ON u.id = g.user_id")
_ORG_LABELS = (", o.name AS org_name", "LEFT JOIN organizations o ON o.id = g.org_id")

_LAST_REQUESTS = """
SELECT id, request_id, created_at, api_key_id, endpoint, model, served_model, status, error_code, prompt_tokens,
       completion_tokens, total_tokens, cost, latency_ms, tags
FROM usage_records WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s
"""


def grouped_usage(cur, columns, by_tag, first_day, last_day, filters, limit=None, fresh_span=None):
    """Sums per group of ``columns`` over the days [first_day, last_day] of the rows matching ``filters``
    ({rollup column: value}, None: any), such as one user's or one endpoint's.

    ``by_tag`` reads the per-tag rollup (a request with two tags counts under both). ``fresh_span``
    ([start, end) moments) adds the records in it not rolled up yet; one statement reads both, so a
    rollup committing meanwhile neither drops nor doubles a record.
    """
    table, records = _SOURCES[by_tag]
    params = []
    if fresh_span is not None:
        columns_read = _ROLLUP_COLUMNS + (", tag" if by_tag else "")
        table = _FRESH_ROWS.format(columns=columns_read, table=table, records=records)
        params = list(fresh_span)
    where = Where().equal_all(filters).between("day", first_day, last_day)
    labels = [_KEY_LABELS] if "api_key_id" in columns else []
    labels += [_USER_LABELS] if "user_id" in columns else []
    labels += [_ORG_LABELS] if "org_id" in columns else []
    statement = _REPORT.format(
        columns=", ".join(columns),
        labels="".join(label for label, _ in labels),
        joins="\n".join(join for _, join in labels),
        table=table,
        where=where.sql,
        order=", ".join(f"g.{column}" for column in columns),
    )
    cur.execute(statement, params + where.params + [limit])
    return cur.fetchall()


def rollup_watermark(cur):
    """The moment the report rollups reach (they hold the records created before it), or None before
    the first rollup."""
    cur.execute("SELECT rolled_up_at FROM report_rollup_watermark")
    row = cur.fetchone()
    return row["rolled_up_at"] if row else None


def last_requests(cur, user_id, endpoint, start, end, limit, cursor=None):
    """A user's usage records in [start, end) (one endpoint's, unless None), newest first, a page of
    ``limit`` after ``cursor``."""
    where = Where().equal_all({"user_id": user_id, "endpoint": endpoint}).between("created_at", start, end, False)
    where = where.older_than_cursor(cursor)
    cur.execute(_LAST_REQUESTS.format(where=where.sql), where.params + [limit])
    return cur.fetchall()
