"""Schemas for plans and rate-limit overrides; their window and quota fields come from the registry."""

import marshmallow as ma

from ops_gateway.limits.windows import LIMIT_FIELDS, QUOTA_FIELDS


def integer_fields(names, **options):
    """A generated schema with one Integer field per name (subclass it to name and document it)."""
    return ma.Schema.from_dict({name: ma.fields.Integer(**options) for name in names})


class RateLimitsSchema(integer_fields(LIMIT_FIELDS, allow_none=True, validate=ma.validate.Range(min=0, max=10**12))):
    """Every window; each a non-negative integer, or null to inherit the plan."""

    class Meta:
        unknown = ma.RAISE


class SetRateLimitRequest(ma.Schema):
    """POST /admin/limit: target by user_id or api_key (exactly one)."""

    user_id = ma.fields.Integer(validate=ma.validate.Range(min=1))
    api_key = ma.fields.String(validate=ma.validate.Length(min=1, max=200))
    rate_limits = ma.fields.Nested(RateLimitsSchema, required=True)

    @ma.validates_schema
    def _one_target(self, data, **kwargs):
        if ("user_id" in data) == ("api_key" in data):
            raise ma.ValidationError("give exactly one of user_id or api_key", "user_id")
        if not data.get("rate_limits"):
            raise ma.ValidationError("name at least one window", "rate_limits")


class EffectiveWindowsSchema(integer_fields(LIMIT_FIELDS)):
    """Effective value of every window."""


class LimitWarningSchema(ma.Schema):
    """A window that a longer window of its kind caps: its limit kept up for the longer window's
    length exceeds the longer window's limit."""

    code = ma.fields.String(metadata={"enum": ["capped_by_longer_window"]})
    window = ma.fields.String(metadata={"enum": list(LIMIT_FIELDS), "example": "requests_per_minute"})
    capped_by = ma.fields.String(metadata={"enum": list(LIMIT_FIELDS), "example": "requests_per_hour"})
    message = ma.fields.String()


class SetRateLimitResponse(ma.Schema):
    """Result of POST /admin/limit."""

    status = ma.fields.String()
    message = ma.fields.String()
    user_id = ma.fields.Integer()
    rate_limits = ma.fields.Nested(EffectiveWindowsSchema)
    warnings = ma.fields.List(
        ma.fields.Nested(LimitWarningSchema),
        required=True,
        metadata={"description": "windows of the effective limits that a longer window caps; empty: none"},
    )


class EffectiveLimitsSchema(ma.Schema):
    """GET/DELETE /admin/limit/<user_id>."""

    user_id = ma.fields.Integer()
    plan = ma.fields.String()
    rate_limits = ma.fields.Nested(EffectiveWindowsSchema)
    sources = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(metadata={"enum": ["plan", "override"]}))


class PlanSchema(integer_fields((*LIMIT_FIELDS, *QUOTA_FIELDS))):
    """A plan's limits: its windows plus quotas and concurrency."""

    name = ma.fields.String()
    description = ma.fields.String()
    max_concurrent_requests = ma.fields.Integer()


class PlanListSchema(ma.Schema):
    """GET /admin/plans."""

    plans = ma.fields.List(ma.fields.Nested(PlanSchema))
