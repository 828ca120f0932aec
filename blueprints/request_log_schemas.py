"""Schemas of the request log (/admin/requests, /user/requests)."""

import marshmallow as ma

from blueprints.fields import Money, Timestamp
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.pipeline.endpoints import ENDPOINT_NAMES

_STATUSES = ("success", "incomplete", "error")


def _ip(value):
    if canonical_ip(value) is None:
        raise ma.ValidationError("not an IP address")


class RequestLogArgsSchema(ma.Schema):
    """Filters and page of GET /user/requests (dates: ISO 8601 with Z or an offset, both included)."""

    key_id = ma.fields.Integer()
    model = ma.fields.String(validate=ma.validate.Length(min=1, max=200), metadata={"description": "the billed model"})
    endpoint = ma.fields.String(validate=ma.validate.OneOf(ENDPOINT_NAMES))
    status = ma.fields.String(validate=ma.validate.OneOf(_STATUSES))
    tag = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    ip = ma.fields.String(validate=_ip, metadata={"description": "the client's address"})
    min_latency_ms = ma.fields.Float(validate=ma.validate.Range(min=0, max=1e9))
    start_date = ma.fields.String(metadata={"format": "date-time"})
    end_date = ma.fields.String(metadata={"format": "date-time"})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(metadata={"description": "next_cursor from the previous page"})


class AdminRequestLogArgsSchema(RequestLogArgsSchema):
    """GET /admin/requests: also any user's or org's."""

    user_id = ma.fields.Integer()
    org_id = ma.fields.Integer()


class RequestEntrySchema(ma.Schema):
    """One settled /v1 request."""

    request_id = ma.fields.String(metadata={"description": "its X-Request-ID"})
    created_at = Timestamp()
    user_id = ma.fields.Integer()
    org_id = ma.fields.Integer(allow_none=True, metadata={"description": "the org an org key's request was charged to"})
    api_key_id = ma.fields.Integer(allow_none=True)
    masked_key = ma.fields.String(allow_none=True)
    endpoint = ma.fields.String(metadata={"enum": list(ENDPOINT_NAMES)})
    model = ma.fields.String(metadata={"description": "the model asked for"})
    served_model = ma.fields.String(allow_none=True, metadata={"description": "the one that answered, if another"})
    status = ma.fields.String(metadata={"enum": list(_STATUSES)})
    upstream_status = ma.fields.Integer(allow_none=True)
    error_code = ma.fields.String(allow_none=True)
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost = Money(metadata={"description": "what was charged"})
    upstream_cost = Money(allow_none=True, metadata={"description": "what upstream billed; null: not reported yet"})
    latency_ms = ma.fields.Float()
    upstream_latency_ms = ma.fields.Float(allow_none=True)
    overhead_ms = ma.fields.Float(allow_none=True, metadata={"description": "time spent in the gateway"})
    tags = ma.fields.List(ma.fields.String())
    client_ip = ma.fields.String(allow_none=True)
    streamed = ma.fields.Boolean()
    cache_hit = ma.fields.Boolean(metadata={"description": "answered by the response cache"})


class PayloadsSchema(ma.Schema):
    """A request's logged bodies, secrets redacted."""

    request = ma.fields.String(metadata={"description": "the request body as the gateway validated it"})
    response = ma.fields.String(metadata={"description": "the answer (a stream: its events) or the error"})
    truncated = ma.fields.Boolean(metadata={"description": "a body was cut at PAYLOAD_MAX_BYTES"})


class RequestDetailSchema(RequestEntrySchema):
    """The newest request with an X-Request-ID, how many share it, and its logged payloads."""

    same_request_id = ma.fields.Integer(metadata={"description": "requests sent with this X-Request-ID"})
    payloads = ma.fields.Nested(
        PayloadsSchema, allow_none=True, metadata={"description": "null: its user, org and key do not log payloads"}
    )


class RequestLogPageSchema(ma.Schema):
    """A newest-first page of the request log."""

    requests = ma.fields.List(ma.fields.Nested(RequestEntrySchema))
    next_cursor = ma.fields.String(allow_none=True)
