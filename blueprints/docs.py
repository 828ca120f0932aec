"""Documenting views: the error envelope statuses each can return, and the ones that need no API key.

Every operation needs an API key unless its view says otherwise (``blueprints.docs_assets``).
"""

from functools import reduce

from blueprints.docs_assets import METRICS_TOKEN_SCHEME

# ``@blp.doc(**PUBLIC)``: answers without credentials (health checks for load balancers).
PUBLIC = {"security": []}
# ``@blp.doc(**METRICS_TOKEN)``: the METRICS_TOKEN bearer when one is set, else nothing.
METRICS_TOKEN = {"security": [{METRICS_TOKEN_SCHEME: []}, {}]}

ERROR_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, malformed, unknown, revoked or expired API key",
    402: "Insufficient credits",
    403: "Key not allowed here (not admin, IP not allowed, missing scope, or asking for more than it holds)",
    404: "Not found",
    408: "The request body did not arrive within CLIENT_BODY_TIMEOUT_SECONDS",
    409: "Conflict with current state",
    413: "The request body is over MAX_REQUEST_BYTES",
    422: "Validation failed",
    429: "Rate limited",
    502: "Upstream error",
    503: "Dependency unavailable or busy (database_busy, upstream_busy)",
    504: "Upstream timeout",
}


def documents_errors(blp, *statuses, schema=None):
    """Decorator adding the error envelope for each status to a view's OpenAPI responses
    (``schema``: the errors' own shape instead, the Messages API's)."""

    def documented(status):
        if schema is None:
            return blp.alt_response(status, response="DEFAULT_ERROR", description=ERROR_DESCRIPTIONS.get(status))
        return blp.alt_response(status, schema=schema, description=ERROR_DESCRIPTIONS.get(status))

    def decorate(view):
        view = reduce(lambda func, status: documented(status)(func), statuses, view)
        if schema is None:
            return view
        # Errors in their own shape replace the envelope for the statuses not listed too.
        default = {"description": "Error", "content": {"application/json": {"schema": schema}}}
        return blp.doc(responses={"default": default})(view)

    return decorate


USER_ERRORS = (401, 403, 429, 503)
ADMIN_ERRORS = (401, 403, 429, 503)
