"""Dashboard sessions: who may sign in, whether a session still stands, and the signed-out list.

A session records who signed in, never the key. Each request re-checks it: a user must still be
an active admin whose sign-in key still works; a bootstrap session carries an HMAC of
ADMIN_API_KEY, so rotating that key signs those sessions out. Signing out lists the session id
in Redis until the cookie would have expired, so a copied cookie dies with it. The cookie itself
(Flask's signed session, CSRF token) is the HTTP layer's: ``blueprints/dashboard_session.py``.
"""

import hashlib
import hmac
import logging
import secrets
import time

import redis
from flask import current_app

from ops_gateway.accounts import audit, auth, keys, security
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import Forbidden
from ops_gateway.dashboard import queries as dashboard_queries

logger = logging.getLogger("ops_gateway.security")

SESSION_MAX_AGE_SECONDS = 12 * 3600
SIGNED_OUT_KEY = "gw:dashboard:signed-out:{sid}"
BOOTSTRAP_ACTOR = "admin:bootstrap"


def bootstrap_mac(bootstrap_key):
    """An HMAC of the bootstrap key under SECRET_KEY: proves which key signed in without storing it."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"dashboard-bootstrap:" + bootstrap_key.encode(), hashlib.sha256).hexdigest()


def _refuse_non_admin(principal, token, path):
    """A valid key of a non-admin: audited like the API's 403 (not counted toward an IP block)."""
    details = {"reason": "not_admin", "key_prefix": keys.token_prefix(token), "path": path}
    with db.transaction() as cur:
        audit.record(cur, "auth_failure", principal["actor"], principal["user_id"], principal["api_key_id"], details)
    raise Forbidden("this key does not belong to an admin", code="forbidden")


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
            _refuse_non_admin(principal, token, path)
        user_id = principal["user_id"]
        identity = {
            "kind": "user",
            "user_id": user_id,
            "api_key_id": principal["api_key_id"],
            "actor": f"admin:{user_id}",
        }
    logger.info("dashboard sign-in", extra={"actor": identity["actor"]})
    return {**identity, "sid": secrets.token_urlsafe(16), "issued": int(time.time())}


def _signed_out(sid):
    """Whether this session id was signed out (Redis down: no)."""
    try:
        return bool(redis_store.get_redis().exists(SIGNED_OUT_KEY.format(sid=sid)))
    except redis.RedisError:
        return False  # like the other security checks, fail open: the cookie's own expiry still holds


def current_admin(state):
    """The admin ({actor, user_id, role, label}) a session's contents stand for, or None: expired,
    signed out, or no longer an admin."""
    sid, issued = state.get("sid"), state.get("issued", 0)
    if not sid or time.time() - issued > SESSION_MAX_AGE_SECONDS or _signed_out(sid):
        return None
    if state.get("kind") == "bootstrap":
        bootstrap = current_app.config.get("ADMIN_API_KEY")
        if not bootstrap or not hmac.compare_digest(bootstrap_mac(bootstrap), state.get("key_mac", "")):
            return None
        return {"actor": BOOTSTRAP_ACTOR, "user_id": None, "role": "admin", "label": "bootstrap admin key"}
    with db.transaction() as cur:
        email = dashboard_queries.session_admin(cur, state.get("user_id"), state.get("api_key_id"))
    if email is None:
        return None
    return {"actor": state["actor"], "user_id": state["user_id"], "role": "admin", "label": email}


def sign_out(state):
    """List a session's id as signed out (in Redis) until its cookie would have expired."""
    sid, issued = state.get("sid"), state.get("issued", 0)
    remaining = int(issued + SESSION_MAX_AGE_SECONDS - time.time())
    if sid and remaining > 0:
        try:
            redis_store.get_redis().set(SIGNED_OUT_KEY.format(sid=sid), 1, ex=remaining)
        except redis.RedisError:
            logger.warning("dashboard sign-out not shared (Redis unavailable); the cookie is cleared")
