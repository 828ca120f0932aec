"""Schemas for plans and rate-limit overrides."""

import marshmallow as ma

_WINDOW = {"allow_none": True, "validate": ma.validate.Range(min=0, max=10**12)}


class RateLimitsSchema(ma.Schema):
    """The six windows; each a non-negative integer, or null to inherit the plan."""

    class Meta:
        unknown = ma.RAISE

    requests_per_minute = ma.fields.Integer(**_WINDOW)
    requests_per_hour = ma.fields.Integer(**_WINDOW)
    requests_per_day = ma.fields.Integer(**_WINDOW)
    tokens_per_minute = ma.fields.Integer(**_WINDOW)
    tokens_per_hour = ma.fields.Integer(**_WINDOW)
    tokens_per_day = ma.fields.Integer(**_WINDOW)


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


class EffectiveWindowsSchema(ma.Schema):
    """Effective values of the six windows."""

    requests_per_minute = ma.fields.Integer()
    requests_per_hour = ma.fields.Integer()
    requests_per_day = ma.fields.Integer()
    tokens_per_minute = ma.fields.Integer()
    tokens_per_hour = ma.fields.Integer()
    tokens_per_day = ma.fields.Integer()


class SetRateLimitResponse(ma.Schema):
    """Result of POST /admin/limit."""

    status = ma.fields.String()
    message = ma.fields.String()
    user_id = ma.fields.Integer()
    rate_limits = ma.fields.Nested(EffectiveWindowsSchema)


class EffectiveLimitsSchema(ma.Schema):
    """GET/DELETE /admin/limit/<user_id>."""

    user_id = ma.fields.Integer()
    plan = ma.fields.String()
    rate_limits = ma.fields.Nested(EffectiveWindowsSchema)
    sources = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(metadata={"enum": ["plan", "override"]}))


class PlanSchema(EffectiveWindowsSchema):
    """A plan's limits: the six windows plus quotas and concurrency."""

    name = ma.fields.String()
    description = ma.fields.String()
    daily_request_quota = ma.fields.Integer()
    monthly_request_quota = ma.fields.Integer()
    daily_token_quota = ma.fields.Integer()
    monthly_token_quota = ma.fields.Integer()
    max_concurrent_requests = ma.fields.Integer()


class PlanListSchema(ma.Schema):
    """GET /admin/plans."""

    plans = ma.fields.List(ma.fields.Nested(PlanSchema))
