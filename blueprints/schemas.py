"""Marshmallow schemas shared by several blueprints."""

import marshmallow as ma


class HealthSchema(ma.Schema):
    """Dependency health snapshot."""

    status = ma.fields.String(metadata={"enum": ["healthy", "degraded", "unhealthy"]})
    reasons = ma.fields.List(ma.fields.String(), metadata={"description": "why not healthy; empty when healthy"})
    database = ma.fields.String(metadata={"enum": ["connected", "disconnected"]})
    redis = ma.fields.String(metadata={"enum": ["connected", "disconnected", "failing"]})
    openrouter = ma.fields.String(metadata={"enum": ["connected", "error", "unconfigured"]})
    user_count = ma.fields.Integer()
    timestamp = ma.fields.String(metadata={"description": "ISO 8601 UTC"})
    version = ma.fields.String()
    uptime_seconds = ma.fields.Float()


class LiveSchema(ma.Schema):
    """Liveness answer."""

    status = ma.fields.String()


class ReadySchema(ma.Schema):
    """Readiness answer."""

    status = ma.fields.String(metadata={"enum": ["ready", "not_ready"]})
    reason = ma.fields.String()
