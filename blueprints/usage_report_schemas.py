"""Schemas of the spend reports: GET /admin/reports/usage and GET /user/usage."""

import marshmallow as ma

from blueprints.fields import Money, Timestamp
from ops_gateway.observability.spend_reports import ENDPOINTS

FRESH = {
    "load_default": False,
    "metadata": {
        "description": "add the usage not rolled up yet, read from the usage records (400 fresh_span_too_long"
        " when that is more than 24 hours of the report's range)"
    },
}
ENDPOINT_FILTER = {
    "validate": ma.validate.OneOf(ENDPOINTS),
    "metadata": {"description": "count only this /v1 endpoint's requests (default: every endpoint)"},
}


class UsageReportArgsSchema(ma.Schema):
    """Query of GET /admin/reports/usage: dimensions, an endpoint filter, whole UTC days (both included), format."""

    group_by = ma.fields.String(
        load_default="day",
        validate=ma.validate.Length(max=100),
        metadata={
            "description": "comma-separated, in order, any of user,org,key,model,endpoint,day,tag"
            " (org: the org an org key's requests were charged to; null: personal keys)",
            "example": "user,day",
        },
    )
    endpoint = ma.fields.String(**ENDPOINT_FILTER)
    start_date = ma.fields.String(metadata={"format": "date", "description": "default: 29 days before end_date"})
    end_date = ma.fields.String(metadata={"format": "date", "description": "default: today (UTC)"})
    format = ma.fields.String(load_default="json", validate=ma.validate.OneOf(["json", "csv"]))
    fresh = ma.fields.Boolean(**FRESH)


class UserUsageArgsSchema(ma.Schema):
    """Query of GET /user/usage: the report's (without the user dimension), plus the requests' page
    (the endpoint filter narrows both)."""

    group_by = ma.fields.String(
        load_default="day",
        validate=ma.validate.Length(max=100),
        metadata={"description": "comma-separated, in order, any of key,model,endpoint,day,tag", "example": "key,day"},
    )
    endpoint = ma.fields.String(**ENDPOINT_FILTER)
    start_date = ma.fields.String(metadata={"format": "date", "description": "default: 29 days before end_date"})
    end_date = ma.fields.String(metadata={"format": "date", "description": "default: today (UTC)"})
    fresh = ma.fields.Boolean(**FRESH)
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))
    cursor = ma.fields.String(metadata={"description": "next_cursor from the previous page of requests"})


class UsageGroupSchema(ma.Schema):
    """One group: the grouped dimensions' values (only those asked for) and the group's sums."""

    user_id = ma.fields.Integer()
    email = ma.fields.String(allow_none=True)
    org_id = ma.fields.Integer(allow_none=True, metadata={"description": "null: personal keys' requests"})
    org_name = ma.fields.String(allow_none=True)
    api_key_id = ma.fields.Integer(allow_none=True)
    key_name = ma.fields.String(allow_none=True)
    masked_key = ma.fields.String(allow_none=True)
    model = ma.fields.String(metadata={"description": "the billed model: the one that answered"})
    endpoint = ma.fields.String(metadata={"enum": list(ENDPOINTS)})
    day = ma.fields.Date()
    tag = ma.fields.String(allow_none=True, metadata={"description": "null: requests without tags"})
    requests = ma.fields.Integer()
    errors = ma.fields.Integer(metadata={"description": "requests whose status is not success"})
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    cost = Money()
    avg_latency_ms = ma.fields.Float(allow_none=True, metadata={"description": "rounded to 2 decimals"})


class UsageReportSchema(ma.Schema):
    """Usage grouped by the asked dimensions over [start_date, end_date] (whole UTC days)."""

    start_date = ma.fields.Date()
    end_date = ma.fields.Date()
    group_by = ma.fields.List(ma.fields.String())
    endpoint = ma.fields.String(allow_none=True, metadata={"description": "the endpoint filter; null: every endpoint"})
    rolled_up_at = Timestamp(
        allow_none=True,
        metadata={
            "description": "the last usage_rollup run: the rollups count the requests made before it (fresh=true"
            " adds the later ones); null: never rolled up"
        },
    )
    groups = ma.fields.List(ma.fields.Nested(UsageGroupSchema))


class UsageRequestSchema(ma.Schema):
    """One of the caller's requests."""

    id = ma.fields.Integer()
    request_id = ma.fields.String()
    created_at = Timestamp()
    api_key_id = ma.fields.Integer(allow_none=True)
    endpoint = ma.fields.String(metadata={"enum": list(ENDPOINTS)})
    model = ma.fields.String(metadata={"description": "the model asked for"})
    served_model = ma.fields.String(
        allow_none=True, metadata={"description": "the model that answered and was billed; null: the one asked for"}
    )
    status = ma.fields.String()
    error_code = ma.fields.String(allow_none=True)
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost = Money()
    latency_ms = ma.fields.Float()
    tags = ma.fields.List(ma.fields.String())


class UserUsageSchema(UsageReportSchema):
    """Your usage grouped as asked, and your requests in the range, newest first, a page at a time."""

    requests = ma.fields.List(ma.fields.Nested(UsageRequestSchema))
    next_cursor = ma.fields.String(allow_none=True)
