"""Schemas of the audit trail: the API-key audit log (/user/api-keys/audit-logs, /admin/audit-logs),
security events (/admin/security-events) and the audit report (/admin/reports/audit)."""

import marshmallow as ma

from blueprints.fields import Timestamp
from ops_gateway.limits import security


class AuditLogSchema(ma.Schema):
    """One audit row (never key material beyond a masked prefix)."""

    id = ma.fields.Integer()
    user_id = ma.fields.Integer(allow_none=True)
    api_key_id = ma.fields.Integer(allow_none=True)
    action = ma.fields.String()
    actor = ma.fields.String()
    ip = ma.fields.String(allow_none=True)
    user_agent = ma.fields.String(allow_none=True)
    request_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    created_at = Timestamp()


class AuditLogArgsSchema(ma.Schema):
    """Filters of the audit-log endpoints (dates: ISO 8601 with Z or an offset)."""

    key_id = ma.fields.Integer()
    action = ma.fields.String()
    start_date = ma.fields.String(metadata={"format": "date-time"})
    end_date = ma.fields.String(metadata={"format": "date-time"})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(metadata={"description": "next_cursor from the previous page"})


class AdminAuditLogArgsSchema(AuditLogArgsSchema):
    """Admin filters: any user."""

    user_id = ma.fields.Integer()


class AuditLogPageSchema(ma.Schema):
    """A newest-first page of audit rows."""

    status = ma.fields.String()
    total_logs = ma.fields.Integer(
        metadata={"description": "exact number of entries matching the filters, on every page of the listing"}
    )
    logs = ma.fields.List(ma.fields.Nested(AuditLogSchema))
    next_cursor = ma.fields.String(allow_none=True)


class SecurityEventArgsSchema(ma.Schema):
    """Filters of GET /admin/security-events (dates: ISO 8601 with Z or an offset)."""

    type = ma.fields.String(metadata={"description": "one of " + ", ".join(security.EVENT_TYPES)})
    user_id = ma.fields.Integer()
    ip = ma.fields.IP()
    start_date = ma.fields.String(metadata={"format": "date-time"})
    end_date = ma.fields.String(metadata={"format": "date-time"})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    cursor = ma.fields.String(metadata={"description": "next_cursor from the previous page"})


class SecurityEventSchema(ma.Schema):
    """One security event; repeats within its dedupe window are folded into ``count``."""

    id = ma.fields.Integer()
    type = ma.fields.String()
    user_id = ma.fields.Integer(allow_none=True)
    api_key_id = ma.fields.Integer(allow_none=True)
    ip = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    count = ma.fields.Integer()
    created_at = Timestamp()
    last_seen_at = Timestamp()


class SecurityEventPageSchema(ma.Schema):
    """A newest-first page of security events."""

    status = ma.fields.String()
    events = ma.fields.List(ma.fields.Nested(SecurityEventSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AuditReportArgsSchema(ma.Schema):
    """Range and format of GET /admin/reports/audit."""

    start_date = ma.fields.String(required=True, metadata={"format": "date-time"})
    end_date = ma.fields.String(required=True, metadata={"format": "date-time"})
    format = ma.fields.String(load_default="json", validate=ma.validate.OneOf(["json", "csv"]))
