"""Schemas of /user/monitor, /admin/monitor and /admin/alerts."""

import marshmallow as ma

from blueprints.account_schemas import BudgetSchema
from blueprints.fields import Money, Timestamp
from blueprints.proxy_schemas import CacheInfoSchema
from ops_gateway.limits.windows import LIMIT_FIELDS
from ops_gateway.observability.spend_reports import ENDPOINTS


class ModelUsageSchema(ma.Schema):
    """Usage of one model, on every endpoint."""

    model = ma.fields.String(metadata={"description": "the billed model: the one that answered"})
    requests = ma.fields.Integer()
    errors = ma.fields.Integer()
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost = Money()
    requests_today = ma.fields.Integer()
    cost_today = Money()
    last_request_time = Timestamp(allow_none=True)


class EndpointUsageSchema(ma.Schema):
    """Usage of one /v1 endpoint (every model): all time, today and this month (UTC)."""

    endpoint = ma.fields.String(metadata={"enum": list(ENDPOINTS)})
    requests = ma.fields.Integer()
    total_tokens = ma.fields.Integer(metadata={"description": "prompt (input) plus completion (output) tokens"})
    cost = Money()
    requests_today = ma.fields.Integer()
    tokens_today = ma.fields.Integer()
    cost_today = Money()
    requests_this_month = ma.fields.Integer()
    tokens_this_month = ma.fields.Integer()
    cost_this_month = Money()


class UsageMetricsSchema(ma.Schema):
    """All-time, this month's and today's (UTC) usage, exact to the cent, broken down per model and per
    endpoint."""

    total_requests = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    total_cost = Money()
    requests_today = ma.fields.Integer()
    tokens_today = ma.fields.Integer()
    cost_today = Money()
    requests_this_month = ma.fields.Integer()
    tokens_this_month = ma.fields.Integer()
    cost_this_month = Money()
    average_tokens_per_request = ma.fields.Float()
    most_used_model = ma.fields.String(allow_none=True, metadata={"description": "by requests"})
    last_request_time = Timestamp(allow_none=True)
    by_model = ma.fields.List(ma.fields.Nested(ModelUsageSchema))
    by_endpoint = ma.fields.List(
        ma.fields.Nested(EndpointUsageSchema), metadata={"description": "the endpoints used, most requests first"}
    )


class RateLimitWindowSchema(ma.Schema):
    """One rate-limit window as it stands now."""

    limit = ma.fields.Integer()
    used = ma.fields.Integer()
    remaining = ma.fields.Integer()
    reset_at = ma.fields.String(metadata={"description": "ISO 8601 UTC"})
    reset_seconds = ma.fields.Integer()


class RateLimitWindowsSchema(
    ma.Schema.from_dict({name: ma.fields.Nested(RateLimitWindowSchema) for name in LIMIT_FIELDS})
):
    """The caller's windows, by name."""


class UserMonitorSchema(ma.Schema):
    """GET /user/monitor."""

    status = ma.fields.String()
    timestamp = ma.fields.String()
    user_id = ma.fields.Integer()
    api_key = ma.fields.String(metadata={"description": "the calling key, masked"})
    current_credits = Money()
    plan = ma.fields.String()
    budgets = ma.fields.List(ma.fields.Nested(BudgetSchema), metadata={"description": "the caps on this user and key"})
    usage_metrics = ma.fields.Nested(UsageMetricsSchema)
    rate_limits = ma.fields.Nested(
        RateLimitWindowsSchema, metadata={"description": "every window; empty when Redis is unreachable"}
    )


class TopUserSchema(ma.Schema):
    """A heavy user today."""

    user_id = ma.fields.Integer()
    api_key = ma.fields.String(allow_none=True, metadata={"description": "their most recently used key, masked"})
    requests = ma.fields.Integer()
    tokens_used = ma.fields.Integer()
    cost = Money()


class TopOrgSchema(ma.Schema):
    """A heavy org today (its org keys' requests)."""

    org_id = ma.fields.Integer()
    name = ma.fields.String()
    credits = Money(metadata={"description": "the org's balance now"})
    requests = ma.fields.Integer()
    tokens_used = ma.fields.Integer()
    cost = Money()


class ActivitySchema(ma.Schema):
    """One recent request (chat completion, embeddings or response)."""

    request_id = ma.fields.String()
    user_id = ma.fields.Integer()
    endpoint = ma.fields.String(metadata={"enum": list(ENDPOINTS)})
    model = ma.fields.String(metadata={"description": "the model asked for"})
    served_model = ma.fields.String(
        allow_none=True, metadata={"description": "the model that answered and was billed; null: the one asked for"}
    )
    status = ma.fields.String()
    total_tokens = ma.fields.Integer()
    cost = Money()
    latency_ms = ma.fields.Float()
    created_at = Timestamp()


class PercentilesSchema(ma.Schema):
    """Latency percentiles in milliseconds (null without traffic)."""

    p50 = ma.fields.Float(allow_none=True)
    p95 = ma.fields.Float(allow_none=True)
    p99 = ma.fields.Float(allow_none=True)


class PerformanceSchema(ma.Schema):
    """Completions of the last minute, 5 minutes and hour (deployment-wide, from usage records)."""

    requests_per_second_1m = ma.fields.Float()
    requests_5m = ma.fields.Integer()
    requests_1h = ma.fields.Integer()
    error_rate_5m = ma.fields.Float(metadata={"description": "percent of completions that failed upstream"})
    error_rate_1h = ma.fields.Float(metadata={"description": "percent"})
    latency_ms = ma.fields.Nested(PercentilesSchema, metadata={"description": "gateway latency, last 5 minutes"})
    upstream_latency_ms = ma.fields.Nested(PercentilesSchema, metadata={"description": "last 5 minutes"})


class DatabaseStatusSchema(ma.Schema):
    """Pool of the answering process, database size, slow statements and pool exhaustions across the deployment."""

    pool_in_use = ma.fields.Integer()
    pool_idle = ma.fields.Integer()
    pool_max = ma.fields.Integer()
    size_bytes = ma.fields.Integer()
    slow_queries_1h = ma.fields.Integer(allow_none=True, metadata={"description": "null when Redis is down"})
    pool_exhausted_1h = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "503 database_busy refusals (no free connection); null when Redis is down"},
    )


class ReconciliationSchema(ma.Schema):
    """Requests upstream reported its own cost for, and both costs of them."""

    upstream_reported_requests = ma.fields.Integer()
    cost = Money(metadata={"description": "what we charged for these requests"})
    upstream_cost = Money(metadata={"description": "what OpenRouter reported they cost (usage.cost)"})
    drift = Money(metadata={"description": "cost - upstream_cost: positive when we charged more"})


class BillingReconciliationSchema(ma.Schema):
    """Our charges against upstream's own accounting (UTC day and month)."""

    today = ma.fields.Nested(ReconciliationSchema)
    month = ma.fields.Nested(ReconciliationSchema)


class ResourcesSchema(ma.Schema):
    """Host CPU and memory, the answering process's memory, the load average."""

    cpu_percent = ma.fields.Float()
    memory_percent = ma.fields.Float()
    rss_bytes = ma.fields.Integer()
    load_avg = ma.fields.List(ma.fields.Float())


class JobRunSchema(ma.Schema):
    """The last run of a scheduler job."""

    status = ma.fields.String()
    started_at = Timestamp()
    finished_at = Timestamp(allow_none=True)
    duration_ms = ma.fields.Float(allow_none=True)
    error = ma.fields.String(allow_none=True)


class AlertSchema(ma.Schema):
    """An alert incident."""

    id = ma.fields.Integer()
    rule = ma.fields.String()
    status = ma.fields.String(metadata={"enum": ["firing", "resolved"]})
    severity = ma.fields.String()
    message = ma.fields.String()
    value = ma.fields.Float(allow_none=True)
    threshold = ma.fields.Float(allow_none=True)
    details = ma.fields.Dict()
    fired_at = Timestamp()
    resolved_at = Timestamp(allow_none=True)
    last_notified_at = Timestamp(allow_none=True)


class ResponseCacheSchema(ma.Schema):
    """How much of the last hour the response cache answered (bytes and lookups: /metrics)."""

    requests_1h = ma.fields.Integer(metadata={"description": "settled requests in the last hour"})
    hits_1h = ma.fields.Integer(metadata={"description": "of them answered by the response cache"})
    hit_rate_1h = ma.fields.Float(metadata={"description": "percent"})


class AdminMonitorDataSchema(ma.Schema):
    """Everything an operator looks at first."""

    total_users = ma.fields.Integer()
    active_users_today = ma.fields.Integer()
    total_requests_today = ma.fields.Integer()
    total_tokens_today = ma.fields.Integer()
    total_cost_today = Money()
    system_usage_metrics = ma.fields.Nested(UsageMetricsSchema)
    top_users_by_usage = ma.fields.List(ma.fields.Nested(TopUserSchema), metadata={"description": "today"})
    total_orgs = ma.fields.Integer()
    top_orgs_by_usage = ma.fields.List(ma.fields.Nested(TopOrgSchema), metadata={"description": "today"})
    recent_activity = ma.fields.List(ma.fields.Nested(ActivitySchema))
    performance = ma.fields.Nested(PerformanceSchema)
    billing = ma.fields.Nested(BillingReconciliationSchema)
    cache = ma.fields.Nested(CacheInfoSchema, metadata={"description": "as in /admin/cache-status"})
    response_cache = ma.fields.Nested(ResponseCacheSchema)
    database = ma.fields.Nested(DatabaseStatusSchema)
    resources = ma.fields.Nested(ResourcesSchema)
    scheduler = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(JobRunSchema))
    alerts = ma.fields.List(ma.fields.Nested(AlertSchema), metadata={"description": "firing now"})


class AdminMonitorSchema(ma.Schema):
    """GET /admin/monitor."""

    status = ma.fields.String()
    timestamp = ma.fields.String()
    data = ma.fields.Nested(AdminMonitorDataSchema)


class AlertListArgsSchema(ma.Schema):
    """Filters of GET /admin/alerts."""

    status = ma.fields.String(validate=ma.validate.OneOf(["firing", "resolved"]))
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))


class AlertListSchema(ma.Schema):
    """Firing alerts, then the most recent incidents."""

    status = ma.fields.String()
    active = ma.fields.List(ma.fields.Nested(AlertSchema))
    recent = ma.fields.List(ma.fields.Nested(AlertSchema), metadata={"description": "newest first, any status"})
