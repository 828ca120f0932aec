"""The maintenance domain's SQL: rollups, retention, backups and the catalogue's age (the database
statistics db_maintenance reads are in ``statistics_queries``).

Plain functions taking the cursor first and returning rows as dicts (or counts). Table and
database names are code's own constants or generated here, always quoted as identifiers.
"""

from psycopg2 import sql


def identified(cur, template, *names):
    """A statement with quoted identifiers, as the plain string the slow-query logger prints."""
    return sql.SQL(template).format(*map(sql.Identifier, names)).as_string(cur)


# Usage rollups

_DELETE_ROLLUPS = """
DELETE FROM usage_rollups WHERE granularity = %(granularity)s
  AND bucket_start >= %(start)s AND bucket_start < %(end)s
"""

_INSERT_ROLLUPS = """
INSERT INTO usage_rollups (granularity, bucket_start, user_id, model, requests, errors,
                           prompt_tokens, completion_tokens, cost, latency_ms_sum)
SELECT %(granularity)s, date_trunc(%(granularity)s, created_at, 'UTC'), user_id, model,
       count(*), count(*) FILTER (WHERE status <> 'success'),
       sum(prompt_tokens), sum(completion_tokens), sum(cost), sum(latency_ms)
FROM usage_records
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 2, 3, 4
"""


def newest_rollup_bucket(cur, granularity):
    """Start of the newest rollup bucket of a granularity, or None."""
    cur.execute("SELECT max(bucket_start) AS newest FROM usage_rollups WHERE granularity = %s", (granularity,))
    return cur.fetchone()["newest"]


def rewrite_rollups(cur, granularity, start, end):
    """Replace every rollup bucket of a granularity in [start, end) by its recomputation; the rows written."""
    params = {"granularity": granularity, "start": start, "end": end}
    cur.execute(_DELETE_ROLLUPS, params)
    cur.execute(_INSERT_ROLLUPS, params)
    return cur.rowcount


# Spend-report rollups (sql/0017, 0018): whole UTC days per (user, key, model, endpoint), and per
# tag, summed from the records as sql/0023's views count them (the billed model; an untagged
# request under the NULL tag, so a tag report still adds up to every request).

_REPORT_SUMS = """sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost),
       sum(latency_ms_sum)"""
# The rollups hold exactly the records created before the watermark, so a report can add the rest.
_REPORT_RANGE = "created_at >= %(start)s AND created_at < %(end)s AND created_at < %(watermark)s"

_INSERT_KEY_DAILY = f"""
INSERT INTO usage_key_daily (day, user_id, api_key_id, model, endpoint, org_id, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT day, user_id, api_key_id, model, endpoint, org_id, {_REPORT_SUMS}
FROM usage_report_records WHERE {_REPORT_RANGE}
GROUP BY 1, 2, 3, 4, 5, 6
"""

_INSERT_TAG_DAILY = f"""
INSERT INTO usage_tag_daily (day, user_id, api_key_id, model, endpoint, tag, org_id, requests, errors,
                             prompt_tokens, completion_tokens, cost, latency_ms_sum)
SELECT day, user_id, api_key_id, model, endpoint, tag, org_id, {_REPORT_SUMS}
FROM usage_report_tag_records WHERE {_REPORT_RANGE}
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

_MOVE_WATERMARK = """
INSERT INTO report_rollup_watermark (rolled_up_at) VALUES (clock_timestamp())
ON CONFLICT (id) DO UPDATE SET rolled_up_at = EXCLUDED.rolled_up_at
RETURNING rolled_up_at
"""


def rewrite_report_days(cur, start, end):
    """Replace the report rollups of the UTC days in [start, end) (midnights) with the records created
    before now, which becomes their watermark; (the rows written, the watermark)."""
    cur.execute(_MOVE_WATERMARK)
    watermark = cur.fetchone()["rolled_up_at"]
    params = {"start": start, "end": end, "first": start.date(), "stop": end.date(), "watermark": watermark}
    written = 0
    for table, insert in (("usage_key_daily", _INSERT_KEY_DAILY), ("usage_tag_daily", _INSERT_TAG_DAILY)):
        cur.execute(f"DELETE FROM {table} WHERE day >= %(first)s AND day < %(stop)s", params)
        cur.execute(insert, params)
        written += cur.rowcount
    return written, watermark


# Retention

_DELETE_BATCH = "DELETE FROM {} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {} WHERE {} < %s LIMIT %s))"


def table_missing(cur, name):
    """Whether no table of this name exists."""
    cur.execute("SELECT to_regclass(%s) IS NULL AS missing", (name,))
    return cur.fetchone()["missing"]


def create_usage_partition(cur, month):
    """Create the usage_records partition of the month starting on ``month``."""
    cur.execute("SELECT ensure_usage_partition(%s)", (month,))


def usage_partitions(cur):
    """Names of usage_records' partitions, sorted."""
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'usage_records'::regclass ORDER BY c.relname"
    )
    return [row["relname"] for row in cur.fetchall()]


def drop_table(cur, name):
    """DROP TABLE name."""
    cur.execute(identified(cur, "DROP TABLE {}", name))


def delete_batch_before(cur, table, column, cutoff, batch_size):
    """Delete up to ``batch_size`` rows of ``table`` whose ``column`` is before ``cutoff``; how many went."""
    cur.execute(identified(cur, _DELETE_BATCH, table, table, column), (cutoff, batch_size))
    return cur.rowcount


# Backups


def count_rows(cur, tables):
    """{table: row count} for each table."""
    counts = {}
    for table in tables:
        cur.execute(identified(cur, "SELECT count(*) AS n FROM {}", table))
        counts[table] = cur.fetchone()["n"]
    return counts


def server_major(cur):
    """The server's major version number."""
    cur.execute("SHOW server_version_num")
    return int(cur.fetchone()["server_version_num"]) // 10000


def export_snapshot(cur):
    """{snapshot, db}: this transaction's snapshot exported for pg_dump, and the database's name."""
    cur.execute("SELECT pg_export_snapshot() AS snapshot, current_database() AS db")
    return cur.fetchone()


def current_database(cur):
    """The connected database's name."""
    cur.execute("SELECT current_database() AS db")
    return cur.fetchone()["db"]


def databases_named_like(cur, prefix):
    """Names of the databases starting with ``prefix``."""
    cur.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s", (len(prefix), prefix))
    return [row["datname"] for row in cur.fetchall()]


def create_database_from_template0(cur, name):
    """CREATE DATABASE name TEMPLATE template0 (outside a transaction)."""
    cur.execute(identified(cur, "CREATE DATABASE {} TEMPLATE template0", name))


def drop_database(cur, name):
    """Drop the database if it exists, ending its sessions (outside a transaction)."""
    cur.execute(identified(cur, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name))


# The model catalogue


def catalog_fetch(cur):
    """{fetched_at, models: how many} of the shared model catalogue, or None."""
    cur.execute("SELECT fetched_at, jsonb_array_length(models) AS models FROM model_catalog WHERE id = 1")
    return cur.fetchone()
