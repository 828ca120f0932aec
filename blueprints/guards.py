"""The before_request guards of the key-holder and admin blueprints, the per-key /user limit and
the per-IP admin limit.

They read the request (Authorization header, client address, path) and hand it to the
authentication service (``ops_gateway.accounts.auth``), which raises the refusals; the
authenticated caller is ``g.user`` for the rest of the request.
"""

from flask import current_app, g, request

from ops_gateway.accounts import auth
from ops_gateway.core.extensions import limiter
from ops_gateway.limits import security


def key_authorization():
    """The caller's key as an Authorization value: the header, else the anthropic SDK's
    ``x-api-key`` (Claude Code sends ``Authorization: Bearer``, the SDK ``x-api-key``)."""
    authorization = request.headers.get("Authorization", "")
    api_key = request.headers.get("x-api-key")
    return f"Bearer {api_key}" if api_key and not authorization else authorization


def require_user():
    """before_request hook for /user: any valid key, within USER_RATE_LIMIT for that key."""
    principal = auth.authenticate(request.headers.get("Authorization", ""), request.remote_addr, request.path)
    security.check_key_rate_limit(principal, current_app.config["USER_RATE_LIMIT"])


def require_scope(scope):
    """403 when the caller's key was created with scopes that do not include ``scope`` (none = all)."""
    error = auth.scope_error(g.user, scope)
    if error:
        raise error


def require_admin():
    """before_request hook for /admin: the bootstrap ADMIN_API_KEY or a key of an admin user with
    the admin:read (GET, HEAD, OPTIONS) or admin:write (anything else) scope."""
    authorization = request.headers.get("Authorization", "")
    auth.authenticate_admin(authorization, request.remote_addr, request.path, request.method)


def admin_only(blueprint):
    """Guard an /admin blueprint: the per-IP admin limit (shared by every admin route and the
    dashboard), then ``require_admin``."""
    limit_admin_blueprint(blueprint)
    blueprint.before_request(require_admin)


# Per-IP limit on /admin/* and the dashboard, one budget across all of them, so a leaked or
# guessed admin key cannot be hammered.
_admin_rate_limit = limiter.shared_limit(
    lambda: current_app.config["ADMIN_RATE_LIMIT"],
    scope="admin_ip",
    error_message="too many admin requests from this IP",
)
_ADMIN_BLUEPRINTS = set()


def limit_admin_blueprint(blueprint):
    """Put every route of ``blueprint`` under the per-IP admin limit."""
    _ADMIN_BLUEPRINTS.add(blueprint.name)
    _admin_rate_limit(blueprint)


@limiter.request_filter
def _outside_admin():
    """Flask-Limiter has nothing to check outside the admin blueprints: let it skip those requests
    at once (it would otherwise resolve limits for every /v1 request)."""
    return request.blueprint not in _ADMIN_BLUEPRINTS
