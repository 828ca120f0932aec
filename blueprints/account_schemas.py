"""Request and response schemas for users, API keys, balances and credits."""

import ipaddress

import marshmallow as ma

from blueprints.fields import Money, Timestamp
from ops_gateway.accounts import model_access
from ops_gateway.accounts.api_keys import SCOPES
from ops_gateway.billing import budgets


class UserSchema(ma.Schema):
    """A gateway user."""

    id = ma.fields.Integer()
    email = ma.fields.String()
    username = ma.fields.String(allow_none=True)
    role = ma.fields.String(metadata={"enum": ["user", "admin"]})
    status = ma.fields.String(metadata={"enum": ["active", "suspended"]})
    plan = ma.fields.String()
    credits = Money()
    reserved_credits = Money(metadata={"description": "held for requests in flight"})
    allowed_models = ma.fields.List(
        ma.fields.String(), metadata={"description": "a ceiling over all the user's keys; empty: every model"}
    )
    budget = Money(allow_none=True, metadata={"description": "spend cap per budget_period; null: none"})
    budget_period = ma.fields.String()
    budget_alert_thresholds = ma.fields.List(ma.fields.Float())
    log_payloads = ma.fields.Boolean(metadata={"description": "request and response bodies are stored"})
    created_at = Timestamp()
    updated_at = Timestamp()


class CreateUserSchema(ma.Schema):
    """Body of POST /admin/users."""

    email = ma.fields.Email(required=True, validate=ma.validate.Length(max=320))
    username = ma.fields.String(validate=ma.validate.Length(min=1, max=100))
    credits = Money(load_default=None, validate=ma.validate.Range(min=0))
    plan = ma.fields.String(validate=ma.validate.Length(min=1, max=50))
    role = ma.fields.String(load_default="user", validate=ma.validate.OneOf(["user", "admin"]))


def model_patterns():
    """A list of model ids or glob patterns ("openai/*"); empty means every model."""
    return ma.fields.List(
        ma.fields.String(
            validate=[
                ma.validate.Length(min=1, max=model_access.MAX_PATTERN_CHARS),
                ma.validate.Regexp(r"^[A-Za-z0-9_.:/*?@+\[\]-]+$", error="not a model id or glob pattern"),
            ]
        ),
        validate=ma.validate.Length(max=model_access.MAX_PATTERNS),
        metadata={"description": "model ids or glob patterns (openai/*); empty: every model"},
    )


def budget_fields():
    """The writable fields of a spend cap (users and keys alike)."""
    return {
        "budget": Money(
            allow_none=True,
            validate=ma.validate.Range(min=0),
            metadata={"description": "USD per budget_period; null removes the cap"},
        ),
        "budget_period": ma.fields.String(
            validate=ma.validate.OneOf(budgets.PERIODS),
            metadata={"description": "resets at UTC day, ISO week (Monday) or month boundaries; never: no reset"},
        ),
        "budget_alert_thresholds": ma.fields.List(
            ma.fields.Float(validate=ma.validate.Range(min=0, min_inclusive=False, max=2)),
            validate=ma.validate.Length(min=1, max=10),
            metadata={"description": "fractions of the budget announced once per period; default [0.5, 0.8, 1.0]"},
        ),
    }


class BudgetSchema(ma.Schema):
    """A spend cap as it stands this period."""

    scope = ma.fields.String(metadata={"enum": ["user", "key", "org", "member"]})
    budget = Money()
    budget_period = ma.fields.String(metadata={"enum": list(budgets.PERIODS)})
    budget_alert_thresholds = ma.fields.List(ma.fields.Float())
    spent = Money(attribute="budget_spent", metadata={"description": "settled spend this period"})
    reserved = Money(attribute="budget_reserved", metadata={"description": "held for requests in flight"})
    resets_at = Timestamp(attribute="budget_resets_at", allow_none=True, metadata={"description": "null: never"})


def payload_logging(owner):
    """The switch of payload logging on a user, org or key (audited with the change that sets it)."""
    return ma.fields.Boolean(
        metadata={"description": f"store the request and response bodies of this {owner}'s requests, secrets redacted"}
    )


class UpdateUserSchema(ma.Schema.from_dict(budget_fields())):
    """Body of PATCH /admin/users/<id>."""

    status = ma.fields.String(validate=ma.validate.OneOf(["active", "suspended"]))
    role = ma.fields.String(validate=ma.validate.OneOf(["user", "admin"]))
    plan = ma.fields.String(validate=ma.validate.Length(min=1, max=50))
    username = ma.fields.String(validate=ma.validate.Length(min=1, max=100))
    allowed_models = model_patterns()
    log_payloads = payload_logging("user")


class NumberedPageArgsSchema(ma.Schema):
    """The status filter and numbered page of an admin listing (users, orgs)."""

    status = ma.fields.String(validate=ma.validate.OneOf(["active", "suspended"]))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))


class NumberedPageSchema(ma.Schema):
    """Where a numbered page of an admin listing is: how many match, this page's number and size."""

    total = ma.fields.Integer()
    page = ma.fields.Integer()
    page_size = ma.fields.Integer()


class UserListArgsSchema(NumberedPageArgsSchema):
    """Filters and page of GET /admin/users."""

    email = ma.fields.String(metadata={"description": "case-insensitive substring"})


class UserListSchema(NumberedPageSchema):
    """A page of users."""

    users = ma.fields.List(ma.fields.Nested(UserSchema))


def _validate_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ma.ValidationError(f"{value!r} is not an IP address or CIDR range") from exc


class ApiKeySchema(ma.Schema):
    """An API key as shown after creation: masked, never the full key."""

    id = ma.fields.Integer()
    name = ma.fields.String()
    environment = ma.fields.String()
    masked_key = ma.fields.Function(lambda row: f"{row['prefix']}…{row['last4']}")
    status = ma.fields.String(metadata={"enum": ["active", "rotated", "revoked"]})
    scopes = ma.fields.List(ma.fields.String())
    ip_allowlist = ma.fields.List(ma.fields.String())
    allowed_models = ma.fields.List(ma.fields.String(), metadata={"description": "empty: every model"})
    budget = Money(allow_none=True, metadata={"description": "spend cap per budget_period; null: none"})
    budget_period = ma.fields.String()
    budget_alert_thresholds = ma.fields.List(ma.fields.Float())
    created_at = Timestamp()
    last_used_at = Timestamp(allow_none=True)
    expires_at = Timestamp(allow_none=True)
    grace_until = Timestamp(allow_none=True, metadata={"description": "a rotated key works until then"})
    revoked_at = Timestamp(allow_none=True)
    org_id = ma.fields.Integer(allow_none=True, metadata={"description": "an org key's org; null: a personal key"})
    cache_ttl_seconds = ma.fields.Integer(allow_none=True, metadata={"description": "the key's response-cache TTL"})
    log_payloads = ma.fields.Boolean(metadata={"description": "its requests' bodies are stored"})


class CreateUserResponseSchema(ma.Schema):
    """The new user and their first key, shown once."""

    user = ma.fields.Nested(UserSchema)
    api_key = ma.fields.String(metadata={"description": "full key; shown only in this response"})
    key = ma.fields.Nested(ApiKeySchema)


def _cache_ttl():
    """A key's default response-cache TTL."""
    return ma.fields.Integer(
        allow_none=True,
        validate=ma.validate.Range(min=1, max=30 * 86400),
        metadata={
            "description": "cache this key's /v1 answers this many seconds unless a request says otherwise"
            " (X-Gateway-Cache-TTL, Cache-Control: no-store); at most CACHE_MAX_TTL_SECONDS applies; null: off"
        },
    )


class CreateKeySchema(ma.Schema.from_dict(budget_fields())):
    """Body of POST /user/api-keys; budget fields left out are the creating key's own cap's, if it has one."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    environment = ma.fields.String(load_default="live", validate=ma.validate.OneOf(["live", "test"]))
    expires_in_days = ma.fields.Integer(validate=ma.validate.Range(min=1, max=3650))
    ip_allowlist = ma.fields.List(ma.fields.String(validate=_validate_network), load_default=list)
    scopes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(SCOPES)),
        metadata={"description": "empty: every scope; omitted: the creating key's own scopes"},
    )
    allowed_models = model_patterns()
    cache_ttl_seconds = _cache_ttl()
    org_id = ma.fields.Integer(
        validate=ma.validate.Range(min=1),
        metadata={"description": "an org key: draws on that org's credits (you must be a member); omitted: personal"},
    )


class UpdateKeySchema(ma.Schema.from_dict(budget_fields())):
    """Body of PATCH /user/api-keys/<id>; through /user a capped key cannot loosen a cap (budget_escalation)."""

    cache_ttl_seconds = _cache_ttl()
    log_payloads = payload_logging("key")
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=100))
    expires_in_days = ma.fields.Integer(allow_none=True, validate=ma.validate.Range(min=1, max=3650))
    ip_allowlist = ma.fields.List(ma.fields.String(validate=_validate_network))
    scopes = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(SCOPES)))
    allowed_models = model_patterns()


class RevealedKeySchema(ma.Schema):
    """A key with its full value, shown once (creation or rotation)."""

    api_key = ma.fields.String(metadata={"description": "full key; store it now, it is not shown again"})
    key = ma.fields.Nested(ApiKeySchema)


class RotateKeySchema(ma.Schema):
    """Body of POST /user/api-keys/<id>/rotate."""

    grace_seconds = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=7 * 86400))


class RevokeArgsSchema(ma.Schema):
    """Query of DELETE /user/api-keys/<id>."""

    force = ma.fields.Boolean(load_default=False)


class KeyListSchema(ma.Schema):
    """The caller's keys."""

    keys = ma.fields.List(ma.fields.Nested(ApiKeySchema))


class BalanceSchema(ma.Schema):
    """GET /user/balance."""

    user_id = ma.fields.Integer()
    org_id = ma.fields.Integer(allow_none=True, metadata={"description": "an org key's org, whose balance this is"})
    api_key = ma.fields.String(metadata={"description": "masked key used for this request"})
    credits = Money()
    reserved_credits = Money()
    status = ma.fields.String()
    plan = ma.fields.String()
    budgets = ma.fields.List(
        ma.fields.Nested(BudgetSchema),
        metadata={"description": "the caps on this key: its user's and its own; an org key's org's, member's and own"},
    )


class CreditAdjustmentSchema(ma.Schema):
    """Body of POST /admin/users/<id>/credits."""

    amount = Money(required=True, metadata={"description": "positive adds, negative removes"})
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=500))

    @ma.validates("amount")
    def _not_zero(self, value, **kwargs):
        if value == 0:
            raise ma.ValidationError("must not be zero")


class CreditAdjustmentResultSchema(ma.Schema):
    """The balance after an adjustment."""

    user_id = ma.fields.Integer()
    amount = Money()
    credits = Money()
    reason = ma.fields.String()
