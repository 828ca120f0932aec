"""Dashboard sessions: an admin key is exchanged for a signed session cookie that never holds the key.

The cookie (Flask's signed session, HttpOnly, SameSite=Strict, path /dashboard, Secure whenever
the browser reached us over https) records who signed in. Every request re-checks it: a user
must still be an active admin whose sign-in key still works; a bootstrap session carries an HMAC
of ADMIN_API_KEY, so rotating that key signs those sessions out. Signing out also lists the
session id in Redis until the cookie would have expired, so a copied cookie dies with it.
"""

import hashlib
import hmac
import logging
import secrets
import time

import redis
from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from ops_gateway.accounts import audit, auth, keys, security
from ops_gateway.core import db, redis_store
from ops_gateway.core.errors import BadRequest, Forbidden
from ops_gateway.dashboard import queries as dashboard_queries

logger = logging.getLogger("ops_gateway.security")

SESSION_MAX_AGE_SECONDS = 12 * 3600
SIGNED_OUT_KEY = "gw:dashboard:signed-out:{sid}"
BOOTSTRAP_ACTOR = "admin:bootstrap"


def forwarded_https():
    """Whether the browser used https: directly, or as a TLS-terminating proxy's X-Forwarded-Proto says.

    Trusting the header is safe here: it can only make the cookie stricter (Secure), never looser.
    """
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or proto == "https"


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with the dashboard's cookie attributes."""

    salt = "ops-gateway-dashboard"

    def get_cookie_name(self, app):
        """A name of our own, so nothing else on the domain collides with it."""
        return "gw_dashboard"

    def get_cookie_path(self, app):
        """Sent to the dashboard only, never to the API."""
        return "/dashboard"

    def get_cookie_httponly(self, app):
        """Never readable from scripts."""
        return True

    def get_cookie_samesite(self, app):
        """Never sent on cross-site requests (with the CSRF token, a second line against forgery)."""
        return "Strict"

    def get_cookie_secure(self, app):
        """Secure when the browser is on https (directly or behind a proxy)."""
        return forwarded_https()


def init_app(app):
    """Use the dashboard's session cookie (the JSON API has no sessions)."""
    app.session_interface = DashboardSessionInterface()


def bootstrap_mac(bootstrap_key):
    """An HMAC of the bootstrap key under SECRET_KEY: proves which key signed in without storing it."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"dashboard-bootstrap:" + bootstrap_key.encode(), hashlib.sha256).hexdigest()


def csrf_token():
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    """400 unless the form carries this session's CSRF token."""
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise BadRequest("the form expired or did not come from this dashboard; reload and retry", code="csrf_failed")


def _refuse_non_admin(principal, token):
    """A valid key of a non-admin: audited like the API's 403 (not counted toward an IP block)."""
    details = {"reason": "not_admin", "key_prefix": keys.token_prefix(token), "path": request.path}
    with db.transaction() as cur:
        audit.record(cur, "auth_failure", principal["actor"], principal["user_id"], principal["api_key_id"], details)
    raise Forbidden("this key does not belong to an admin", code="forbidden")


def sign_in(token):
    """Check an admin key from the sign-in form and start a fresh session; raise ApiError when refused.

    Failures go through the API's authentication: audited (reason and key prefix only) and
    counted toward the per-IP block.
    """
    security.check_ip_block(request.remote_addr)
    bootstrap = current_app.config.get("ADMIN_API_KEY")
    if token and bootstrap and hmac.compare_digest(token.encode(), bootstrap.encode()):
        identity = {"kind": "bootstrap", "key_mac": bootstrap_mac(bootstrap), "actor": BOOTSTRAP_ACTOR}
    else:
        principal = auth.authenticate_token(token)
        security.note_key_ip(principal, request.remote_addr)
        if principal["role"] != "admin":
            _refuse_non_admin(principal, token)
        user_id = principal["user_id"]
        identity = {
            "kind": "user",
            "user_id": user_id,
            "api_key_id": principal["api_key_id"],
            "actor": f"admin:{user_id}",
        }
    session.clear()  # a new session id and CSRF token: nothing from before sign-in carries over
    session.update(identity, sid=secrets.token_urlsafe(16), issued=int(time.time()))
    csrf_token()
    logger.info("dashboard sign-in", extra={"actor": identity["actor"]})
    return identity


def _signed_out(sid):
    """Whether this session id was signed out (Redis down: no)."""
    try:
        return bool(redis_store.get_redis().exists(SIGNED_OUT_KEY.format(sid=sid)))
    except redis.RedisError:
        return False  # like the other security checks, fail open: the cookie's own expiry still holds


def current_admin():
    """The signed-in admin ({actor, user_id, label}) or None: expired, signed out, or no longer an admin."""
    sid, issued = session.get("sid"), session.get("issued", 0)
    if not sid or time.time() - issued > SESSION_MAX_AGE_SECONDS or _signed_out(sid):
        return None
    if session.get("kind") == "bootstrap":
        bootstrap = current_app.config.get("ADMIN_API_KEY")
        if not bootstrap or not hmac.compare_digest(bootstrap_mac(bootstrap), session.get("key_mac", "")):
            return None
        return {"actor": BOOTSTRAP_ACTOR, "user_id": None, "role": "admin", "label": "bootstrap admin key"}
    with db.transaction() as cur:
        email = dashboard_queries.session_admin(cur, session.get("user_id"), session.get("api_key_id"))
    if email is None:
        return None
    return {"actor": session["actor"], "user_id": session["user_id"], "role": "admin", "label": email}


def sign_out():
    """End the session here and, through Redis, for any copy of its cookie."""
    sid, issued = session.get("sid"), session.get("issued", 0)
    remaining = int(issued + SESSION_MAX_AGE_SECONDS - time.time())
    if sid and remaining > 0:
        try:
            redis_store.get_redis().set(SIGNED_OUT_KEY.format(sid=sid), 1, ex=remaining)
        except redis.RedisError:
            logger.warning("dashboard sign-out not shared (Redis unavailable); the cookie is cleared")
    session.clear()
