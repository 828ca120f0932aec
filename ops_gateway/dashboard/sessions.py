"""Dashboard sessions: who may sign in, whether a session still stands, and the signed-out list.

A session records who signed in, never the key. Each request re-checks it: a user must still be
an active admin whose sign-in key still works, and may do what that key's scopes allow as they
are now (admin:read to look, admin:write to act, as on /admin); a bootstrap session carries an
HMAC of ADMIN_API_KEY, so rotating that key signs those sessions out; an OIDC session is
re-checked by ``oidc_admins``. Signing out lists the session id in Redis until the cookie would
have expired, so a copied cookie dies with it. The cookie itself (Flask's signed session, CSRF
token) is the HTTP layer's: ``blueprints/dashboard_session.py``.
"""

import hashlib
import hmac
import logging
import secrets
import time

import redis
from flask import current_app

from ops_gateway.accounts import auth, key_material
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import Forbidden
from ops_gateway.dashboard import oidc_admins
from ops_gateway.dashboard import queries as dashboard_queries
from ops_gateway.limits import security
from ops_gateway.telemetry import audit

logger = logging.getLogger("ops_gateway.security")

SESSION_MAX_AGE_SECONDS = 12 * 3600
SIGNED_OUT_KEY = "gw:dashboard:signed-out:{sid}"
BOOTSTRAP_ACTOR = "admin:bootstrap"


def bootstrap_mac(bootstrap_key):
    """An HMAC of the bootstrap key under SECRET_KEY: proves which key signed in without storing it."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"dashboard-bootstrap:" + bootstrap_key.encode(), hashlib.sha256).hexdigest()


def _refuse(principal, reason, error, path, token=None):
    """A valid key that may not do this: audited like the API's 403 (not counted toward an IP block)."""
    details = {"reason": reason, "key_prefix": key_material.token_prefix(token), "path": path}
    with db.transaction() as cur:
        audit.record(cur, "auth_failure", principal["actor"], principal["user_id"], principal["api_key_id"], details)
    raise error


def sign_in(token, ip, path):
    """The new session's contents for an admin key from the sign-in form; raise a domain error when refused.

    Failures go through the API's authentication: audited (reason and key prefix only) and
    counted toward the per-IP block of ``ip``.
    """
    security.check_ip_block(ip)
    bootstrap = current_app.config.get("ADMIN_API_KEY")
    if token and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        identity = {"kind": "bootstrap", "key_mac": bootstrap_mac(bootstrap), "actor": BOOTSTRAP_ACTOR}
    else:
        principal = auth.authenticate_token(token, ip, path)
        security.note_key_ip(principal, ip)
        if principal["role"] != "admin":
            not_admin = Forbidden("this key does not belong to an admin", code="forbidden")
            _refuse(principal, "not_admin", not_admin, path, token)
        out_of_scope = auth.scope_error(principal, auth.ADMIN_READ)
        if out_of_scope:
            _refuse(principal, "insufficient_scope", out_of_scope, path, token)
        user_id = principal["user_id"]
        identity = {
            "kind": "user",
            "user_id": user_id,
            "api_key_id": principal["api_key_id"],
            "actor": f"admin:{user_id}",
        }
    return open_session(identity)


def open_session(identity):
    """A new session's contents for whoever signed in (by key or by OIDC): a fresh id and the time."""
    logger.info("dashboard sign-in", extra={"actor": identity["actor"]})
    return {**identity, "sid": secrets.token_urlsafe(16), "issued": int(time.time())}


def _signed_out(sid):
    """Whether this session id was signed out (Redis down: no)."""
    try:
        return bool(redis_store.get_redis().exists(SIGNED_OUT_KEY.format(sid=sid)))
    except redis.RedisError:
        return False  # like the other security checks, fail open: the cookie's own expiry still holds


def current_admin(state):
    """The admin ({actor, user_id, api_key_id, role, label, scopes}) a session's contents stand
    for, or None: expired, signed out, or no longer an admin."""
    sid, issued = state.get("sid"), state.get("issued", 0)
    if not sid or time.time() - issued > SESSION_MAX_AGE_SECONDS or _signed_out(sid):
        return None
    if state.get("kind") == "bootstrap":
        bootstrap = current_app.config.get("ADMIN_API_KEY")
        if not bootstrap or not hmac.compare_digest(bootstrap_mac(bootstrap), state.get("key_mac", "")):
            return None
        label = "bootstrap admin key"
        return {"actor": BOOTSTRAP_ACTOR, "user_id": None, "role": "admin", "label": label, "scopes": []}
    if state.get("kind") == "oidc":
        return oidc_admins.session_admin(state)
    with db.transaction() as cur:
        row = dashboard_queries.session_admin(cur, state.get("user_id"), state.get("api_key_id"))
    if row is None:
        return None
    return {
        "actor": state["actor"],
        "user_id": state["user_id"],
        "api_key_id": state["api_key_id"],
        "role": "admin",
        "label": row["email"],
        "scopes": row["scopes"],
    }


def check_scope(admin, method, path):
    """403 ``insufficient_scope`` (audited) when the signed-in admin's key lacks the scope ``method``
    needs (``auth.admin_scope``); the bootstrap key holds every scope."""
    out_of_scope = auth.scope_error(admin, auth.admin_scope(method))
    if out_of_scope:
        _refuse(admin, "insufficient_scope", out_of_scope, path)


def sign_out(state):
    """List a session's id as signed out (in Redis) until its cookie would have expired."""
    sid, issued = state.get("sid"), state.get("issued", 0)
    remaining = int(issued + SESSION_MAX_AGE_SECONDS - time.time())
    if sid and remaining > 0:
        try:
            redis_store.get_redis().set(SIGNED_OUT_KEY.format(sid=sid), 1, ex=remaining)
        except redis.RedisError:
            logger.warning("dashboard sign-out not shared (Redis unavailable); the cookie is cleared")
