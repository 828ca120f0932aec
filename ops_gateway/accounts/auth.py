"""Bearer-key authentication for /user, /v1 and /admin.

A key is looked up by its HMAC in one indexed query that also brings the user, plan and
limit overrides, so the rest of the request needs no further reads. Nothing is cached between
requests: a revoked, rotated or suspended key fails on every worker at once.
"""

import hmac
import ipaddress
import logging

from flask import current_app, g, request

from ops_gateway.accounts import audit, keys, security
from ops_gateway.core import db
from ops_gateway.core.errors import Forbidden, Unauthenticated
from ops_gateway.limits.plans import LIMIT_COLUMNS
from ops_gateway.observability import metrics

logger = logging.getLogger("ops_gateway.security")

# The key, its user, plan and overrides in one indexed read (the limit columns are the ones
# ``plans.effective_limits`` reads: override, else the plan). Whether the key may be used now
# (``rejection``, judged by the database's clock, which also set grace_until) and whether the
# caller's IP is on its allowlist are computed here, so the same statement can act on them.
_KEY_ROW = f"""
SELECT k.id AS api_key_id, k.user_id, k.name AS key_name, k.prefix, k.last4, k.status AS key_status,
       k.expires_at, k.grace_until, k.ip_allowlist::text[] AS ip_allowlist, k.scopes, k.last_used_at, k.key_hash,
       CASE WHEN k.status = 'revoked' THEN 'revoked'
            WHEN k.status = 'rotated' AND (k.grace_until IS NULL OR k.grace_until <= now()) THEN 'rotated'
            WHEN k.expires_at <= now() THEN 'expired'
            WHEN u.status <> 'active' THEN 'user_suspended' END AS rejection,
       coalesce(cardinality(k.ip_allowlist) = 0 OR %(ip)s::inet <<= ANY (k.ip_allowlist), false) AS ip_allowed,
       u.email, u.role, u.status AS user_status, u.plan, u.credits, u.reserved_credits,
       {LIMIT_COLUMNS}
FROM api_keys k
JOIN users u ON u.id = k.user_id
JOIN plans p ON p.name = u.plan
LEFT JOIN rate_limit_overrides o ON o.user_id = u.id
WHERE k.key_hash = %(digest)s
"""

# A usable key's last_used_at is refreshed (at most once a minute) by the lookup itself.
_TOUCH = """touched AS (
    UPDATE api_keys a SET last_used_at = now() FROM k
    WHERE a.id = k.api_key_id AND k.rejection IS NULL AND k.ip_allowed
      AND (k.last_used_at IS NULL OR k.last_used_at <= now() - interval '60 seconds')
)"""

_KEY_QUERY = db.Prepared("auth_key", f"WITH k AS ({_KEY_ROW}), {_TOUCH} SELECT k.*, false AS held FROM k")

# The same lookup that also holds a completion's worst-case cost when the key is usable from
# this IP and the spendable balance covers it (``held``): one round trip where there were two.
# Anything that refuses the request afterwards gives the hold back (``proxy.open_request``).
# It commits without waiting for the WAL flush (synchronous_commit off for this transaction
# only): a hold lost in a database crash frees credits the scheduler would free anyway, while
# settlements, the money, still wait for it.
_KEY_AND_HOLD_QUERY = db.Prepared(
    "auth_key_and_hold",
    f"""WITH k AS ({_KEY_ROW}), {_TOUCH}, hold AS (
    UPDATE users u SET reserved_credits = u.reserved_credits + %(hold)s, reserved_at = now() FROM k
    WHERE u.id = k.user_id AND k.rejection IS NULL AND k.ip_allowed AND u.credits - u.reserved_credits >= %(hold)s
    RETURNING u.id
)
SELECT k.*, EXISTS (SELECT FROM hold) AS held FROM k, (SELECT set_config('synchronous_commit', 'off', true)) AS c""",
)


def _bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None, "missing"
    if scheme.lower() != "bearer" or not token.strip():
        return None, "malformed"
    return token.strip(), None


def _audit_failure(action, actor, reason, token=None, row=None):
    """Write an auth_failure/ip_blocked row in its own transaction (the request is about to fail)."""
    details = {"reason": reason, "key_prefix": keys.token_prefix(token), "path": request.path}
    with db.transaction() as cur:
        audit.record(
            cur,
            action,
            actor=actor,
            user_id=row["user_id"] if row else None,
            api_key_id=row["api_key_id"] if row else None,
            details=details,
        )
    logger.warning("authentication failed", extra={"reason": reason, "key_prefix": details["key_prefix"]})


def _fail(kind, code, message, reason, token=None, row=None):
    """Audit an authentication failure (own transaction) and raise the envelope.

    A blocked IP gets its 429 instead, unaudited: it learns nothing, not even that the key is wrong.
    """
    security.check_ip_block(request.remote_addr)
    metrics.AUTH_FAILURES.labels(reason).inc()
    _audit_failure(
        "ip_blocked" if kind is Forbidden else "auth_failure", f"ip:{request.remote_addr}", reason, token, row
    )
    if kind is Unauthenticated:
        security.note_auth_failure(request.remote_addr)
    raise kind(message, {"reason": reason}, code=code)


def client_ip():
    """The caller's address as the database compares it (IPv4 clients of a dual-stack listener
    arrive as ::ffff:a.b.c.d and must match IPv4 ranges), or None when it is not an IP."""
    try:
        address = ipaddress.ip_address(request.remote_addr)
    except ValueError:
        return None
    return str(getattr(address, "ipv4_mapped", None) or address)


def _principal(row):
    """What the rest of the request knows about the caller (no key material)."""
    principal = dict(row)
    for column in ("key_hash", "rejection", "ip_allowed"):
        principal.pop(column)
    principal["key_mask"] = keys.mask(row["prefix"], row["last4"])
    principal["actor"] = f"user:{row['user_id']}"
    return principal


def authenticate():
    """Authenticate the request's bearer key and set ``g.user``; raise 401/403/429 envelopes."""
    security.check_ip_block(request.remote_addr)
    principal = _authenticate_key()
    security.note_key_ip(principal, request.remote_addr)
    return principal


def authenticate_and_hold(hold):
    """/v1: authenticate and, in the same statement, hold ``hold`` credits (None: hold nothing).

    ``g.user["held"]`` says whether the hold was taken. The IP-block and new-IP checks of a
    usable key come with the rate-limit gate's one Redis call (``rate_limits.gate``).
    """
    return _authenticate_key(hold)


def _authenticate_key(hold=None):
    token, problem = _bearer_token()
    if problem:
        _fail(Unauthenticated, "unauthorized", "an API key is required: Authorization: Bearer <key>", problem)
    return authenticate_token(token, hold)


def authenticate_token(token, hold=None):
    """Check a presented key (bearer header or the dashboard's sign-in form); failures are audited and counted."""
    if not keys.KEY_PATTERN.match(token):
        _fail(Unauthenticated, "invalid_api_key", "the API key is not valid", "malformed_key", token)
    params = {"digest": keys.hash_key(current_app.config["KEY_HASH_SECRET"], token), "ip": client_ip(), "hold": hold}
    with db.statement() as cur:  # one statement: the lookup (and the hold) commit by themselves
        (_KEY_QUERY if hold is None else _KEY_AND_HOLD_QUERY).execute(cur, params)
        row = cur.fetchone()
    if row is None or not hmac.compare_digest(row["key_hash"], params["digest"]):
        _fail(Unauthenticated, "invalid_api_key", "the API key is not valid", "unknown_key", token)
    reason = row["rejection"]
    if reason:
        _fail(
            Unauthenticated,
            "invalid_api_key",
            f"the API key is not usable ({reason.replace('_', ' ')})",
            reason,
            token,
            row,
        )
    if not row["ip_allowed"]:
        _fail(
            Forbidden,
            "ip_not_allowed",
            "requests from this IP address are not allowed for this key",
            "ip_blocked",
            token,
            row,
        )
    g.user = _principal(row)
    return g.user


def require_user():
    """before_request hook for /user and /v1: any valid key."""
    return authenticate() and None


def require_scope(scope):
    """403 when the caller's key was created with scopes that do not include ``scope`` (none = all)."""
    error = scope_error(g.user, scope)
    if error:
        raise error


def scope_error(principal, scope):
    """The 403 for a key whose scopes do not include ``scope``, or None."""
    if principal.get("scopes") and scope not in principal["scopes"]:
        return Forbidden(f"this key lacks the {scope!r} scope", {"required": scope}, code="insufficient_scope")
    return None


def require_admin():
    """before_request hook for /admin: the bootstrap ADMIN_API_KEY or a key of an admin user."""
    # The per-IP admin limit ran before this hook (``admin_only``). Before the bootstrap
    # comparison: a blocked IP must not learn that a guess was right.
    security.check_ip_block(request.remote_addr)
    token, _ = _bearer_token()
    bootstrap = current_app.config.get("ADMIN_API_KEY")
    if token and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        g.user = {"user_id": None, "role": "admin", "actor": "admin:bootstrap", "key_mask": keys.mask_key(token)}
        return None
    principal = _authenticate_key()
    if principal["role"] != "admin":
        _audit_failure("auth_failure", principal["actor"], "not_admin", token, principal)
        raise Forbidden("this key does not belong to an admin", code="forbidden")
    principal["actor"] = f"admin:{principal['user_id']}"
    return None


def admin_only(blueprint):
    """Guard an /admin blueprint: the per-IP admin limit (Flask-Limiter, shared by every admin
    route and the dashboard), then ``require_admin``."""
    security.limit_admin_blueprint(blueprint)
    blueprint.before_request(require_admin)
