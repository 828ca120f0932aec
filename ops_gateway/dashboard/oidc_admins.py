"""Who may sign in to the dashboard with OpenID Connect, and whether such a session still stands.

The provider only vouches for an email; this module decides what that email may do here. It must
be verified, listed in OIDC_ALLOWED_EMAILS or under one of OIDC_ALLOWED_DOMAINS, and belong to an
active admin user (with OIDC_CREATE_ADMINS, an allowed email with no user gets an admin user on its
first sign-in). The session holds the user id and email, never a token, and each request
re-checks both rules, so taking someone off the allowlist, demoting or suspending them, or turning
OIDC off ends their sessions at once. Every refusal is an ``auth_failure`` audit row, as a refused
key is. The protocol itself (redirects, PKCE, token signatures) is the HTTP layer's:
``blueprints/dashboard_oidc.py``.
"""

import logging

from flask import current_app

from ops_gateway.accounts import users
from ops_gateway.core import db
from ops_gateway.core.errors import Conflict, Forbidden, Unauthenticated, UpstreamFailed
from ops_gateway.dashboard import queries as dashboard_queries
from ops_gateway.limits import security
from ops_gateway.telemetry import audit, metrics

logger = logging.getLogger("ops_gateway.security")

CREATOR_ACTOR = "system:oidc"  # the audit actor of an admin user made on first sign-in

# Each refusal: its error kind and what the sign-in page tells the person. Unauthenticated ones
# count toward the per-IP block, as a wrong key does; the others name a real account and do not.
REFUSALS = {
    "state_mismatch": (Unauthenticated, "That sign-in expired or was not started in this browser; please try again."),
    "provider_error": (Unauthenticated, "The identity provider did not sign you in."),
    "invalid_id_token": (Unauthenticated, "The identity provider's answer could not be verified."),
    "provider_unavailable": (UpstreamFailed, "The identity provider could not be reached; try again later."),
    "email_missing": (Forbidden, "The identity provider did not share an email address."),
    "email_unverified": (Forbidden, "The identity provider has not verified that email address."),
    "email_not_allowed": (Forbidden, "That account may not sign in to this dashboard."),
    "not_admin": (Forbidden, "That account is not an active admin of this gateway."),
}


def refusal(reason, ip, path, email=None, user_id=None):
    """Audit a refused OIDC sign-in (the reason and the email the provider named, never a token) in
    a statement of its own, as the API audits a refused key; return the error to raise."""
    kind, message = REFUSALS[reason]
    details = {"reason": f"oidc_{reason}", "path": path, **({"email": email} if email else {})}
    metrics.AUTH_FAILURES.labels(details["reason"]).inc()
    with db.statement() as cur:
        audit.record(cur, "auth_failure", f"ip:{ip}", user_id, None, details, flushed=False)
    logger.warning("dashboard OIDC sign-in refused", extra={"reason": details["reason"]})
    if kind is Unauthenticated:
        security.note_auth_failure(ip)
    return kind(message, {"reason": reason}, code=f"oidc_{reason}")


def allowed(email):
    """Whether OIDC sign-in is on and its allowlists (exact emails, exact domains) name this email."""
    config = current_app.config
    if not config.get("OIDC_ISSUER") or not email:
        return False
    return email in config["OIDC_ALLOWED_EMAILS"] or email.rpartition("@")[2] in config["OIDC_ALLOWED_DOMAINS"]


def _create_admin(cur, email):
    """An admin user for an allowed email's first sign-in, made as ``POST /admin/users`` makes one
    (its first key's secret is never shown); a concurrent first sign-in's user when it won."""
    try:
        user, _key, _secret = users.create_user(
            cur, email, CREATOR_ACTOR, plan=current_app.config["DEFAULT_PLAN"], role="admin"
        )
    except Conflict:
        return dashboard_queries.user_by_email(cur, email)
    logger.info("dashboard admin created on first OIDC sign-in", extra={"event_user_id": user["id"]})
    return user


def admit(claims, ip, path):
    """The session identity for the person the provider's verified claims name; audit and raise when refused."""
    email = (claims.get("email") or "").strip().lower()
    if not email:
        raise refusal("email_missing", ip, path)
    # Some providers send the claim as the string "true"; anything else is unverified.
    if claims.get("email_verified") not in (True, "true"):
        raise refusal("email_unverified", ip, path, email)
    if not allowed(email):
        raise refusal("email_not_allowed", ip, path, email)
    with db.transaction() as cur:
        user = dashboard_queries.user_by_email(cur, email)
        if user is None and current_app.config["OIDC_CREATE_ADMINS"]:
            user = _create_admin(cur, email)
    if user is None or user["role"] != "admin" or user["status"] != "active":
        raise refusal("not_admin", ip, path, email, user["id"] if user else None)
    return {"kind": "oidc", "user_id": user["id"], "email": email, "actor": f"admin:{user['id']}"}


def session_admin(state):
    """The admin an OIDC session's contents stand for, or None: OIDC off, the email no longer
    allowed, or its user no longer an active admin with that email. It holds every admin scope,
    as the bootstrap key does (there is no key whose scopes could narrow it)."""
    email = state.get("email", "")
    if not allowed(email):
        return None
    with db.transaction() as cur:
        row = dashboard_queries.session_oidc_admin(cur, state.get("user_id"), email)
    if row is None:
        return None
    return {
        "actor": state["actor"],
        "user_id": state["user_id"],
        "api_key_id": None,
        "role": "admin",
        "label": row["email"],
        "scopes": [],
    }
