"""Bearer-key authentication for /user, /v1 and /admin.

A key is looked up by its HMAC in one indexed query that also brings the user, plan and
limit overrides, so the rest of the request needs no further reads. Nothing is cached between
requests: a revoked, rotated or suspended key fails on every worker at once.
"""

import hmac
import ipaddress
import logging
from datetime import timedelta

from flask import current_app, g, request

from ops_gateway import audit, db, keys, metrics, security
from ops_gateway.errors import ApiError

logger = logging.getLogger("ops_gateway.security")

LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is refreshed at most once a minute

_KEY_QUERY = """
SELECT k.id AS api_key_id, k.user_id, k.name AS key_name, k.prefix, k.last4, k.status AS key_status,
       k.expires_at, k.grace_until, k.ip_allowlist::text[] AS ip_allowlist, k.scopes, k.last_used_at,
       k.key_hash, now() AS checked_at,
       u.email, u.role, u.status AS user_status, u.plan, u.credits, u.reserved_credits,
       p.requests_per_minute, p.requests_per_hour, p.requests_per_day,
       p.tokens_per_minute, p.tokens_per_hour, p.tokens_per_day,
       p.daily_request_quota, p.monthly_request_quota, p.daily_token_quota, p.monthly_token_quota,
       p.max_concurrent_requests,
       o.requests_per_minute AS o_requests_per_minute, o.requests_per_hour AS o_requests_per_hour,
       o.requests_per_day AS o_requests_per_day, o.tokens_per_minute AS o_tokens_per_minute,
       o.tokens_per_hour AS o_tokens_per_hour, o.tokens_per_day AS o_tokens_per_day
FROM api_keys k
JOIN users u ON u.id = k.user_id
JOIN plans p ON p.name = u.plan
LEFT JOIN rate_limit_overrides o ON o.user_id = u.id
WHERE k.key_hash = %s
"""


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


def _fail(status, code, message, reason, token=None, row=None):
    """Audit an authentication failure (own transaction) and raise the envelope."""
    metrics.AUTH_FAILURES.labels(reason).inc()
    _audit_failure("ip_blocked" if status == 403 else "auth_failure", f"ip:{request.remote_addr}", reason, token, row)
    if status == 401:
        security.note_auth_failure(request.remote_addr)
    raise ApiError(status, code, message, {"reason": reason})


def _ip_allowed(allowlist, remote_addr):
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; match them against IPv4 ranges.
    address = getattr(address, "ipv4_mapped", None) or address
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowlist)


def _rejection(row, now):
    """Why this key may not be used now, or None (``now`` is the database's clock, which set grace_until)."""
    if row["key_status"] == "revoked":
        return "revoked"
    if row["key_status"] == "rotated" and (row["grace_until"] is None or row["grace_until"] <= now):
        return "rotated"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["user_status"] != "active":
        return "user_suspended"
    return None


def _principal(row):
    """What the rest of the request knows about the caller (no key material)."""
    principal = dict(row)
    principal.pop("key_hash")
    principal.pop("checked_at")
    principal["key_mask"] = keys.mask(row["prefix"], row["last4"])
    principal["actor"] = f"user:{row['user_id']}"
    return principal


def _touch_last_used(row, now):
    if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_RESOLUTION:
        with db.transaction() as cur:
            cur.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (row["api_key_id"],))


def authenticate():
    """Authenticate the request's bearer key and set ``g.user``; raise 401/403/429 envelopes."""
    security.check_ip_block(request.remote_addr)
    return _authenticate_key()


def _authenticate_key():
    token, problem = _bearer_token()
    if problem:
        _fail(401, "unauthorized", "an API key is required: Authorization: Bearer <key>", problem)
    return authenticate_token(token)


def authenticate_token(token):
    """Check a presented key (bearer header or the dashboard's sign-in form); failures are audited and counted."""
    if not keys.KEY_PATTERN.match(token):
        _fail(401, "invalid_api_key", "the API key is not valid", "malformed_key", token)
    digest = keys.hash_key(current_app.config["KEY_HASH_SECRET"], token)
    with db.statement() as cur:  # one read, one round trip
        cur.execute(_KEY_QUERY, (digest,))
        row = cur.fetchone()
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        _fail(401, "invalid_api_key", "the API key is not valid", "unknown_key", token)
    now = row["checked_at"]
    reason = _rejection(row, now)
    if reason:
        _fail(401, "invalid_api_key", f"the API key is not usable ({reason.replace('_', ' ')})", reason, token, row)
    if not _ip_allowed(row["ip_allowlist"], request.remote_addr):
        _fail(
            403,
            "ip_not_allowed",
            "requests from this IP address are not allowed for this key",
            "ip_blocked",
            token,
            row,
        )
    _touch_last_used(row, now)
    g.user = _principal(row)
    security.note_key_ip(g.user, request.remote_addr)
    return g.user


def require_user():
    """before_request hook for /user and /v1: any valid key."""
    return authenticate() and None


def require_scope(scope):
    """403 when the caller's key was created with scopes that do not include ``scope`` (none = all)."""
    if g.user.get("scopes") and scope not in g.user["scopes"]:
        raise ApiError(403, "insufficient_scope", f"this key lacks the {scope!r} scope", {"required": scope})


def require_admin():
    """before_request hook for /admin: the bootstrap ADMIN_API_KEY or a key of an admin user."""
    security.check_admin_rate(request.remote_addr)
    # Before the bootstrap comparison: a blocked IP must not learn that a guess was right.
    security.check_ip_block(request.remote_addr)
    token, _ = _bearer_token()
    bootstrap = current_app.config.get("ADMIN_API_KEY")
    if token and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        g.user = {"user_id": None, "role": "admin", "actor": "admin:bootstrap", "key_mask": keys.mask_key(token)}
        return None
    principal = _authenticate_key()
    if principal["role"] != "admin":
        _audit_failure("auth_failure", principal["actor"], "not_admin", token, principal)
        raise ApiError(403, "forbidden", "this key does not belong to an admin")
    principal["actor"] = f"admin:{principal['user_id']}"
    return None
