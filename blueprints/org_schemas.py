"""Request and response schemas for organizations and their members (/admin/orgs, /org)."""

import marshmallow as ma

from blueprints.account_schemas import (
    NumberedPageArgsSchema,
    NumberedPageSchema,
    budget_fields,
    model_patterns,
    payload_logging,
)
from blueprints.fields import Money, Timestamp
from blueprints.usage_report_schemas import FRESH
from ops_gateway.accounts.org_queries import ROLES

_NAME = {"validate": ma.validate.Length(min=1, max=100)}


class OrgSchema(ma.Schema):
    """An organization: its shared balance, plan, allowed models and spend cap."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    plan = ma.fields.String(metadata={"description": "the limits every org key of the org shares"})
    status = ma.fields.String(metadata={"enum": ["active", "suspended"]})
    credits = Money()
    reserved_credits = Money(metadata={"description": "held for requests in flight"})
    allowed_models = ma.fields.List(ma.fields.String(), metadata={"description": "a ceiling over every org key"})
    budget = Money(allow_none=True, metadata={"description": "spend cap per budget_period; null: none"})
    budget_period = ma.fields.String()
    budget_alert_thresholds = ma.fields.List(ma.fields.Float())
    member_count = ma.fields.Integer()
    log_payloads = ma.fields.Boolean(metadata={"description": "its org keys' request and response bodies are stored"})
    created_at = Timestamp()
    updated_at = Timestamp()


class CreateOrgSchema(ma.Schema.from_dict(budget_fields())):
    """Body of POST /admin/orgs."""

    name = ma.fields.String(required=True, **_NAME)
    plan = ma.fields.String(
        validate=ma.validate.Length(min=1, max=50), metadata={"description": "default: DEFAULT_PLAN"}
    )
    credits = Money(validate=ma.validate.Range(min=0), metadata={"description": "opening balance (a ledger row)"})
    allowed_models = model_patterns()


class UpdateOrgSchema(ma.Schema.from_dict(budget_fields())):
    """Body of PATCH /admin/orgs/<id>."""

    name = ma.fields.String(**_NAME)
    plan = ma.fields.String(validate=ma.validate.Length(min=1, max=50))
    status = ma.fields.String(validate=ma.validate.OneOf(["active", "suspended"]))
    allowed_models = model_patterns()
    log_payloads = payload_logging("org")


class OrgListArgsSchema(NumberedPageArgsSchema):
    """Filters and page of GET /admin/orgs."""

    name = ma.fields.String(metadata={"description": "case-insensitive substring"})


class OrgListSchema(NumberedPageSchema):
    """A page of orgs."""

    orgs = ma.fields.List(ma.fields.Nested(OrgSchema))


class OrgCreditResultSchema(ma.Schema):
    """The org's balance after an adjustment."""

    org_id = ma.fields.Integer()
    amount = Money()
    credits = Money()
    reason = ma.fields.String()


_ROLE = {"validate": ma.validate.OneOf(ROLES), "metadata": {"enum": list(ROLES)}}


class MemberSchema(ma.Schema):
    """A member of an org: role and org budget (what their org keys may spend)."""

    user_id = ma.fields.Integer()
    email = ma.fields.String()
    role = ma.fields.String(metadata={"enum": list(ROLES)})
    budget = Money(allow_none=True, metadata={"description": "the member's cap on org spend; null: none"})
    budget_period = ma.fields.String()
    budget_alert_thresholds = ma.fields.List(ma.fields.Float())
    created_at = Timestamp(metadata={"description": "when they joined"})


class MemberListSchema(ma.Schema):
    """An org's members (a plain member sees only their own row)."""

    members = ma.fields.List(ma.fields.Nested(MemberSchema))


class AddMemberSchema(ma.Schema.from_dict(budget_fields())):
    """Body of POST /admin/orgs/<id>/members and /org/<id>/members."""

    user_id = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1))
    role = ma.fields.String(required=True, **_ROLE)


class UpdateMemberSchema(ma.Schema.from_dict(budget_fields())):
    """Body of PATCH /admin/orgs/<id>/members/<user_id> and /org/<id>/members/<user_id>."""

    role = ma.fields.String(**_ROLE)


class MyOrgSchema(OrgSchema):
    """GET /org/<id>: the org and the caller's own membership."""

    membership = ma.fields.Nested(MemberSchema)


class OrgUsageArgsSchema(ma.Schema):
    """Query of GET /org/<id>/usage."""

    group_by = ma.fields.String(
        load_default="user,day",
        validate=ma.validate.Length(max=100),
        metadata={"description": "comma-separated, in order, any of user,key,model,endpoint,day,tag"},
    )
    start_date = ma.fields.String(metadata={"format": "date", "description": "default: 29 days before end_date"})
    end_date = ma.fields.String(metadata={"format": "date", "description": "default: today (UTC)"})
    format = ma.fields.String(load_default="json", validate=ma.validate.OneOf(["json", "csv"]))
    fresh = ma.fields.Boolean(**FRESH)
