"""The request log: every settled /v1 request, one entry each, for support to find a customer's
request by its X-Request-ID or by who, what, when and how it went.

An entry is the request's usage record (the settlement wrote it), so the log costs the hot path
nothing. Requests refused before upstream (401, 402, 429, a bad body) have no entry: they are
counted in metrics and, for auth failures, the audit log.
"""

from ops_gateway.accounts import key_material
from ops_gateway.core.errors import NotFound
from ops_gateway.observability import request_log_queries


def _entry(row):
    prefix, last4 = row.pop("prefix"), row.pop("last4")
    row["masked_key"] = key_material.mask(prefix, last4) if prefix else None
    return row


def entries(cur, filters, limit, cursor=None):
    """A newest-first page of entries matching ``filters`` (``request_log_queries.FILTERS`` names)."""
    return [_entry(row) for row in request_log_queries.page(cur, filters, limit, cursor)]


def entry(cur, request_id, user_id=None):
    """The newest entry with this X-Request-ID (one of ``user_id``'s own, when given), how many share
    the id (a client may send one twice) and its logged payloads (None: not logged); 404
    ``request_not_found``."""
    rows = request_log_queries.by_request_id(cur, request_id, user_id)
    if not rows:
        raise NotFound(f"no request with id {request_id!r}", code="request_not_found")
    newest = _entry(rows[0])
    bodies = [newest.pop(column) for column in ("request_body", "response_body", "payload_truncated")]
    payloads = None if bodies[0] is None else dict(zip(("request", "response", "truncated"), bodies, strict=True))
    return {**newest, "same_request_id": len(rows), "payloads": payloads}
