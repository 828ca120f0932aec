"""The dashboard's session cookie and CSRF token: the HTTP side of ``ops_gateway.dashboard.sessions``.

The cookie is Flask's signed session (HttpOnly, SameSite=Strict, path /dashboard, Secure whenever
the browser reached us over https); it holds what ``sessions.sign_in`` returned, never the key.
"""

import hmac
import secrets

from flask import request, session
from flask.sessions import SecureCookieSessionInterface

from ops_gateway.core.errors import BadRequest
from ops_gateway.dashboard import sessions


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


def csrf_token():
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    """BadRequest unless the form carries this session's CSRF token."""
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise BadRequest("the form expired or did not come from this dashboard; reload and retry", code="csrf_failed")


def sign_in(token):
    """Start a fresh session for an admin key from the sign-in form; a domain error when refused."""
    return start_session(sessions.sign_in(token, request.remote_addr, request.path))


def start_session(contents):
    """Make ``contents`` (from ``sessions``) this browser's session, whichever way the admin signed in."""
    session.clear()  # a new session id and CSRF token: nothing from before sign-in carries over
    session.update(contents)
    csrf_token()
    return contents


def current_admin():
    """The signed-in admin ({actor, user_id, role, label}) or None."""
    return sessions.current_admin(session)


def sign_out():
    """End the session here and, through Redis, for any copy of its cookie."""
    sessions.sign_out(session)
    session.clear()
