"""Bearer-key authentication for /user, /v1, /admin and the dashboard's sign-in.

A key is looked up by its HMAC in one indexed query that also brings the user, plan and
limit overrides, so the rest of the request needs no further reads. Nothing is cached between
requests: a revoked, rotated or suspended key fails on every worker at once. The HTTP layer
hands in what it read (the Authorization header, the client's address, the path); failures are
audited, counted toward the per-IP block and raised as domain errors.
"""

import hmac
import logging

from flask import current_app, g

from ops_gateway.accounts import key_material
from ops_gateway.billing import credits
from ops_gateway.core import db
from ops_gateway.core.addresses import canonical_ip
from ops_gateway.core.errors import Forbidden, Unauthenticated
from ops_gateway.limits import security
from ops_gateway.limits.plans import LIMIT_COLUMNS
from ops_gateway.telemetry import audit, metrics

logger = logging.getLogger("ops_gateway.security")

# The key, its user, plan and overrides in one indexed read (the limit columns are the ones
# ``plans.effective_limits`` reads: override, else the plan). Whether the key may be used now
# (``rejection``: the database's ``api_key_rejection`` rule, sql/0008, sql/0024) and whether the
# caller's IP is on its allowlist are computed here, so the same statement can act on them. An
# org key (sql/0024) takes its org's plan, balance and status; only personal keys have overrides.
_KEY_ROW = f"""
SELECT k.id AS api_key_id, k.user_id, k.name AS key_name, k.prefix, k.last4, k.status AS key_status,
       k.expires_at, k.grace_until, k.ip_allowlist::text[] AS ip_allowlist, k.scopes, k.last_used_at, k.key_hash,
       k.allowed_models AS key_models, u.allowed_models AS user_models, org.allowed_models AS org_models,
       k.org_id, m.id AS member_id, k.cache_ttl_seconds,
       (k.log_payloads OR u.log_payloads OR coalesce(org.log_payloads, false)) AS log_payloads,
       (u.budget IS NOT NULL OR k.budget IS NOT NULL OR k.org_id IS NOT NULL) AS budgeted,
       api_key_rejection(k.status, k.grace_until, k.expires_at, u.status, coalesce(org.status, 'active')) AS rejection,
       coalesce(cardinality(k.ip_allowlist) = 0 OR %(ip)s::inet <<= ANY (k.ip_allowlist), false) AS ip_allowed,
       u.email, u.role, u.status AS user_status, p.name AS plan, coalesce(org.credits, u.credits) AS credits,
       coalesce(org.reserved_credits, u.reserved_credits) AS reserved_credits,
       {LIMIT_COLUMNS}
FROM api_keys k
JOIN users u ON u.id = k.user_id
LEFT JOIN organizations org ON org.id = k.org_id
LEFT JOIN org_members m ON m.org_id = k.org_id AND m.user_id = k.user_id
JOIN plans p ON p.name = coalesce(org.plan, u.plan)
LEFT JOIN rate_limit_overrides o ON o.user_id = u.id AND k.org_id IS NULL
WHERE k.key_hash = %(digest)s
"""

# A usable key's last_used_at is refreshed (at most once a minute) by the lookup itself.
_TOUCH = """touched AS (
    UPDATE api_keys a SET last_used_at = now() FROM k
    WHERE a.id = k.api_key_id AND k.rejection IS NULL AND k.ip_allowed
      AND (k.last_used_at IS NULL OR k.last_used_at <= now() - interval '60 seconds')
)"""

_KEY_QUERY = db.Prepared(
    "auth_key", f"WITH k AS ({_KEY_ROW}), {_TOUCH} SELECT k.*, false AS held, NULL::bigint AS hold_id FROM k"
)

# The same lookup that also holds a completion's worst-case cost when the key is usable from
# this IP and the spendable balance covers it (``held``): one round trip where there were two.
# A non-zero hold is also its own ``credit_holds`` row (``hold_id``), expiring past the longest
# the request can live, so only its own settlement or refusal releases it while it runs. A caller
# with a spend cap or an org key (``budgeted``) is not held here: ``billing.budgets.hold`` locks the rows the
# cap lives on, which this statement cannot do without a second round trip for everyone.
# Anything that refuses the request afterwards gives the hold back (``Completion.open``).
# It commits without waiting for the WAL flush (synchronous_commit off for this transaction
# only): a hold lost in a database crash frees credits the scheduler would free anyway, while
# settlements, the money, still wait for it.
_KEY_AND_HOLD_QUERY = db.Prepared(
    "auth_key_and_hold",
    f"""WITH k AS ({_KEY_ROW}), {_TOUCH}, hold AS (
    UPDATE users u SET reserved_credits = u.reserved_credits + %(hold)s, reserved_at = now() FROM k
    WHERE u.id = k.user_id AND k.rejection IS NULL AND k.ip_allowed AND NOT k.budgeted
      AND u.credits - u.reserved_credits >= %(hold)s
    RETURNING u.id
), hold_row AS (
    INSERT INTO credit_holds (user_id, api_key_id, request_id, amount, expires_at)
    SELECT hold.id, k.api_key_id, %(request_id)s, %(hold)s, now() + make_interval(secs => %(hold_seconds)s)
    FROM hold, k WHERE %(hold)s > 0
    RETURNING id
)
SELECT k.*, EXISTS (SELECT FROM hold) AS held, (SELECT id FROM hold_row) AS hold_id
FROM k, (SELECT set_config('synchronous_commit', 'off', true)) AS c""",
)


def bearer_token(authorization):
    """(token, None) from an Authorization header, or (None, "missing" | "malformed")."""
    scheme, _, token = authorization.partition(" ")
    if not authorization:
        return None, "missing"
    if scheme.lower() != "bearer" or not token.strip():
        return None, "malformed"
    return token.strip(), None


def _audit_failure(action, actor, reason, path, token=None, row=None):
    """Write an auth_failure/ip_blocked row in one statement of its own (the request is about to fail).

    Its commit does not wait for the WAL flush, so an attacker's refusals cost one round trip and
    no disk wait; only a database crash within that moment could lose the row.
    """
    details = {"reason": reason, "key_prefix": key_material.token_prefix(token), "path": path}
    with db.statement() as cur:
        audit.record(
            cur,
            action,
            actor=actor,
            user_id=row["user_id"] if row else None,
            api_key_id=row["api_key_id"] if row else None,
            details=details,
            flushed=False,
        )
    logger.warning("authentication failed", extra={"reason": reason, "key_prefix": details["key_prefix"]})


def _fail(kind, code, message, reason, ip, path, token=None, row=None):
    """Audit an authentication failure (own transaction) and raise the envelope.

    A blocked IP gets its 429 instead, unaudited: it learns nothing, not even that the key is wrong.
    """
    security.check_ip_block(ip)
    metrics.AUTH_FAILURES.labels(reason).inc()
    _audit_failure("ip_blocked" if kind is Forbidden else "auth_failure", f"ip:{ip}", reason, path, token, row)
    if kind is Unauthenticated:
        security.note_auth_failure(ip)
    raise kind(message, {"reason": reason}, code=code)


def database_ip(ip):
    """The caller's address as the database compares it with the key's allowlist: its canonical
    spelling (IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d and must match IPv4
    ranges), or None when it is not an IP."""
    return canonical_ip(ip)


def _principal(row):
    """What the rest of the request knows about the caller (no key material)."""
    principal = dict(row)
    for column in ("key_hash", "rejection", "ip_allowed"):
        principal.pop(column)
    principal["key_mask"] = key_material.mask(row["prefix"], row["last4"])
    principal["actor"] = f"user:{row['user_id']}"
    return principal


def authenticate(authorization, ip, path):
    """/user: authenticate the bearer key (after the IP block) and note a new IP for it; raise 401/403/429."""
    security.check_ip_block(ip)
    principal = _authenticate_bearer(authorization, ip, path)
    security.note_key_ip(principal, ip)
    return principal


def authenticate_and_hold(authorization, ip, path, hold, request_id=None):
    """/v1: authenticate and, in the same statement, hold ``hold`` credits for ``request_id``
    (None: hold nothing).

    The principal's ``held`` says whether the hold was taken, ``hold_id`` names its row. The
    IP-block and new-IP checks of a usable key come with the rate-limit gate's one Redis call
    (``rate_limits.gate``).
    """
    return _authenticate_bearer(authorization, ip, path, hold, request_id)


def _authenticate_bearer(authorization, ip, path, hold=None, request_id=None):
    token, problem = bearer_token(authorization)
    if problem:
        message = "an API key is required: Authorization: Bearer <key>"
        _fail(Unauthenticated, "unauthorized", message, problem, ip, path)
    return authenticate_token(token, ip, path, hold, request_id)


def authenticate_token(token, ip, path, hold=None, request_id=None):
    """Check a presented key (bearer header or the dashboard's sign-in form) from ``ip``, and set
    ``g.user``; failures are audited (with ``path``) and counted."""
    if not key_material.KEY_PATTERN.match(token):
        _fail(Unauthenticated, "invalid_api_key", "the API key is not valid", "malformed_key", ip, path, token)
    digest = key_material.hash_key(current_app.config["KEY_HASH_SECRET"], token)
    params = {"digest": digest, "ip": database_ip(ip)}
    if hold is not None:
        params.update(hold=hold, request_id=request_id, hold_seconds=credits.hold_lifetime_seconds(current_app.config))
    with db.statement() as cur:  # one statement: the lookup (and the hold) commit by themselves
        (_KEY_QUERY if hold is None else _KEY_AND_HOLD_QUERY).execute(cur, params)
        row = cur.fetchone()
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        _fail(Unauthenticated, "invalid_api_key", "the API key is not valid", "unknown_key", ip, path, token)
    reason = row["rejection"]
    if reason:
        message = f"the API key is not usable ({reason.replace('_', ' ')})"
        _fail(Unauthenticated, "invalid_api_key", message, reason, ip, path, token, row)
    if not row["ip_allowed"]:
        message = "requests from this IP address are not allowed for this key"
        _fail(Forbidden, "ip_not_allowed", message, "ip_blocked", ip, path, token, row)
    g.user = _principal(row)
    return g.user


def authenticate_admin(authorization, ip, path, method):
    """/admin: the bootstrap ADMIN_API_KEY or a key of an admin user whose scopes allow ``method``
    (``admin_scope``); raise 401/403/429 otherwise."""
    # Before the bootstrap comparison: a blocked IP must not learn that a guess was right.
    security.check_ip_block(ip)
    token, _ = bearer_token(authorization)
    bootstrap = current_app.config.get("ADMIN_API_KEY")
    if token and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        g.user = {
            "user_id": None,
            "role": "admin",
            "actor": "admin:bootstrap",
            "key_mask": key_material.mask_key(token),
        }
        return g.user
    principal = _authenticate_bearer(authorization, ip, path)
    if principal["role"] != "admin":
        _audit_failure("auth_failure", principal["actor"], "not_admin", path, token, principal)
        raise Forbidden("this key does not belong to an admin", code="forbidden")
    in_grace = grace_error(principal)
    if in_grace:
        _audit_failure("auth_failure", principal["actor"], "key_in_grace_period", path, token, principal)
        raise in_grace
    out_of_scope = scope_error(principal, admin_scope(method))
    if out_of_scope:
        _audit_failure("auth_failure", principal["actor"], "insufficient_scope", path, token, principal)
        raise out_of_scope
    principal["actor"] = f"admin:{principal['user_id']}"
    return principal


KEY_MANAGEMENT = "keys:manage"
ADMIN_READ, ADMIN_WRITE = "admin:read", "admin:write"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def admin_scope(method):
    """The scope an admin user's key needs for an /admin request (or a dashboard page):
    ``admin:read`` to look (GET, HEAD, OPTIONS), ``admin:write`` for anything else."""
    return ADMIN_READ if method.upper() in _READ_METHODS else ADMIN_WRITE


def scope_error(principal, scope):
    """The 403 for a key whose scopes do not include ``scope`` (no scopes: every scope), or None.

    A rotated key still in its grace period never holds ``keys:manage`` (``grace_error``).
    """
    if principal.get("scopes") and scope not in principal["scopes"]:
        return Forbidden(f"this key lacks the {scope!r} scope", {"required": scope}, code="insufficient_scope")
    return grace_error(principal) if scope == KEY_MANAGEMENT else None


def grace_error(principal):
    """The 403 for a rotated key in its grace period, or None.

    During grace a key is only a credential for what it did (``/v1``, balance, monitor): it
    cannot create, change, rotate, revoke or list keys (or read their audit log), nor use
    ``/admin``, while its replacement is live.
    """
    if principal.get("key_status") != "rotated":
        return None
    message = "a rotated key in its grace period can only make requests; use its replacement"
    grace_until = principal.get("grace_until")
    details = {"grace_until": grace_until.isoformat() if grace_until else None}
    return Forbidden(message, details, code="key_in_grace_period")
