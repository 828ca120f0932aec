"""One JSON error envelope for every 4xx and 5xx the gateway sends.

``{"error": {"code": "<slug>", "message": "...", "status": N, "details": {...}, "request_id": "..."}}``
(the X-Request-ID, to quote to support). Services raise
domain errors (``ops_gateway.core.errors``), whose kind decides the status here; views may raise
``ApiError`` with an explicit status (or flask-smorest's ``abort``); database and upstream
outages have their own 503/502; anything unexpected becomes a 500 envelope with no internals,
logged with the request id.
"""

import logging
import time

import psycopg2
from flask import current_app, g, has_request_context, jsonify
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from ops_gateway.core import errors
from ops_gateway.core.db import UNAVAILABLE_ERRORS, PoolExhausted
from ops_gateway.core.extensions import limiter
from ops_gateway.upstream.failures import UpstreamError

logger = logging.getLogger("ops_gateway.app")

DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


STATUS_BY_KIND = {
    errors.BadRequest: 400,
    errors.Unauthenticated: 401,
    errors.PaymentRequired: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Invalid: 422,
    errors.RateLimited: 429,
    errors.UpstreamFailed: 502,
    errors.Unavailable: 503,
    errors.UpstreamTimedOut: 504,
}


class ApiError(errors.GatewayError):
    """A refusal decided by the HTTP layer itself (a view), with its status given explicitly."""

    def __init__(self, status, code=None, message=None, details=None, headers=None):
        super().__init__(message, details, code or DEFAULT_CODES.get(status, "error"), headers=headers)
        self.status = status


def status_of(error):
    """The HTTP status of a domain error: its kind's (the nearest kind in its class hierarchy)."""
    explicit = getattr(error, "status", None)
    if explicit:
        return explicit
    for kind in type(error).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 500


def error_response(status, code, message, details=None, headers=None):
    """Build the envelope response; it names the request (its X-Request-ID) for support."""
    error = {"code": code, "message": message, "status": status, "details": details or {}}
    response = jsonify({"error": {**error, "request_id": g.get("request_id") if has_request_context() else None}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def response_headers(error):
    """The headers a domain error's response carries (Retry-After from ``retry_after``)."""
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(int(error.retry_after), 1))
    return headers


def handle_gateway_error(error):
    """Render a domain error (or an ApiError) with its kind's status."""
    return error_response(status_of(error), error.code, error.message, error.details, response_headers(error))


def handle_http_exception(error):
    """Render werkzeug/flask-smorest HTTP errors (404, 405, webargs 422, ...) as the envelope."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details = {}
    if "messages" in data:
        details["fields"] = data["messages"]
    if "errors" in data:
        details["fields"] = data["errors"]
    message = data.get("message") or error.description or DEFAULT_CODES.get(status, "error")
    if status == 422 and "message" not in data:
        message = "request validation failed"
    if isinstance(getattr(error, "exc", None), ValueError):  # webargs could not decode the body
        message = invalid_json_message(error.exc)
    headers = dict(data.get("headers") or {})
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, DEFAULT_CODES.get(status, "error"), message, details, headers)


def invalid_json_message(exc):
    """What was wrong with a body the view's parser could not decode, in place of Werkzeug's
    generic "The browser (or proxy) sent a request that this server could not understand"."""
    if isinstance(exc, UnicodeDecodeError):
        return "the request body is not valid UTF-8 JSON"
    return f"the request body is not valid JSON: {exc}"


def handle_rate_limit_exceeded(error):
    """Flask-Limiter's 429 (the per-IP admin limit) in the envelope, with the window and Retry-After."""
    current = limiter.current_limit
    retry_after = max(int(current.reset_at - time.time()), 1) if current else 60
    details = {"limit": str(error.limit.limit), "window": error.limit.scope}
    return error_response(429, "rate_limited", error.description, details, {"Retry-After": str(retry_after)})


def handle_upstream_error(error):
    """The model catalogue could not be fetched and was never cached: upstream's failure, a 502."""
    return error_response(502, "upstream_unavailable", error.message)


def handle_database_unavailable(error):
    """The database is unreachable: a 503 the client can retry, not a 500."""
    logger.error("database unavailable: %s", error.__class__.__name__)
    # Pooled connections to a restarted or vanished server are dead too: drop them, so the
    # next requests reconnect instead of each failing once on a stale connection.
    current_app.extensions["ops_gateway.db"].discard_idle()
    return error_response(503, "database_unavailable", "the database is unavailable; retry shortly")


def handle_pool_exhausted(error):
    """Every pooled connection stayed busy for DB_POOL_TIMEOUT_SECONDS: overload, not an outage."""
    logger.warning("database pool exhausted")
    return error_response(
        503, "database_busy", "every database connection is busy; retry shortly", headers={"Retry-After": "1"}
    )


def handle_invalid_value(error):
    """A value the database cannot store or compare (out of range, malformed): the client's 400."""
    logger.warning("database rejected a value: %s", error.__class__.__name__)
    return error_response(400, "invalid_value", "a value in the request is out of range or malformed")


def handle_value_error(error):
    """psycopg2 refuses a NUL in a string parameter with a ValueError: the client's 400, not a 500.

    request_limits refuses NULs before a view runs; this catches one that arrives another way.
    """
    if "NUL" in str(error):
        return error_response(400, "nul_character", "a value in the request contains a NUL character (\\u0000)")
    return handle_unexpected(error)


def handle_unexpected(error):
    """Anything else: log it with the request id, tell the client nothing internal."""
    logger.exception("unhandled exception")
    return error_response(500, "internal_error", "an internal error occurred; quote the request id to support")


def init_app(app):
    """Register the handlers (after flask-smorest's, so ours win)."""
    app.register_error_handler(errors.GatewayError, handle_gateway_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit_exceeded)
    app.register_error_handler(UpstreamError, handle_upstream_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(psycopg2.DataError, handle_invalid_value)
    app.register_error_handler(ValueError, handle_value_error)
    for exc in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc, handle_database_unavailable)
    app.register_error_handler(PoolExhausted, handle_pool_exhausted)
    app.register_error_handler(Exception, handle_unexpected)
