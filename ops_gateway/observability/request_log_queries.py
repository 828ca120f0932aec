"""The request log's SQL: settled requests from usage_records, newest first, filtered and paged.

Filter columns are this module's own (``FILTERS``), never a client's; every value is a parameter.
"""

from ops_gateway.core.sql_where import Where

_COLUMNS = """r.id, r.request_id, r.created_at, r.user_id, r.org_id, r.api_key_id, k.prefix, k.last4, r.endpoint,
       r.model, r.served_model, r.status, r.upstream_status, r.error_code, r.prompt_tokens, r.completion_tokens,
       r.total_tokens, r.cost, r.upstream_cost, r.latency_ms, r.upstream_latency_ms, r.overhead_ms, r.tags,
       host(r.client_ip) AS client_ip, r.streamed, r.cache_hit"""
# Each filter: its condition on usage_records r (one parameter).
FILTERS = {
    "user_id": "r.user_id = %s",
    "org_id": "r.org_id = %s",
    "key_id": "r.api_key_id = %s",
    "model": "coalesce(r.served_model, r.model) = %s",
    "endpoint": "r.endpoint = %s",
    "status": "r.status = %s",
    "tag": "r.tags @> ARRAY[%s]::text[]",
    "ip": "r.client_ip = %s::inet",
    "min_latency_ms": "r.latency_ms >= %s",
    "start": "r.created_at >= %s",
    "end": "r.created_at <= %s",
}


def _where(filters):
    where = Where()
    for name, value in filters.items():
        if value is not None:
            where.add(FILTERS[name], value)
    return where


def page(cur, filters, limit, cursor=None):
    """Up to ``limit`` requests matching ``filters`` ({FILTERS name: value or None}), newest first,
    after ``cursor`` ((created_at, id) of the previous page's last)."""
    where = _where(filters)
    if cursor is not None:
        where.add("(r.created_at, r.id) < (%s, %s)", *cursor)
    cur.execute(
        f"SELECT {_COLUMNS} FROM usage_records r LEFT JOIN api_keys k ON k.id = r.api_key_id"
        f" WHERE {where.sql} ORDER BY r.created_at DESC, r.id DESC LIMIT %s",
        where.params + [limit],
    )
    return cur.fetchall()


def by_request_id(cur, request_id, user_id=None):
    """The requests with this X-Request-ID (one's own only, with ``user_id``), newest first, with
    their logged payloads (NULL when none were kept)."""
    where = _where({"user_id": user_id}).add("r.request_id = %s", request_id)
    cur.execute(
        f"SELECT {_COLUMNS}, p.request_body, p.response_body, p.truncated AS payload_truncated"
        " FROM usage_records r LEFT JOIN api_keys k ON k.id = r.api_key_id"
        " LEFT JOIN request_payloads p ON p.settlement_id = r.settlement_id"
        f" WHERE {where.sql} ORDER BY r.created_at DESC, r.id DESC LIMIT 100",
        where.params,
    )
    return cur.fetchall()
