"""One JSON error envelope for every 4xx and 5xx the gateway sends.

``{"error": {"code": "<slug>", "message": "...", "status": N, "details": {...}}}`` — views raise
``ApiError`` (or flask-smorest's ``abort``); unexpected exceptions become a 500 envelope with no
internals, logged with the request id.
"""

import logging
import time

import marshmallow as ma
import psycopg2
from flask import current_app, jsonify
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from ops_gateway.core.db import UNAVAILABLE_ERRORS, PoolExhausted
from ops_gateway.upstream.openrouter import UpstreamError

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


class ApiError(Exception):
    """An error a client should see: status, machine-readable code, message, details."""

    def __init__(self, status, code=None, message=None, details=None, headers=None):
        super().__init__(message or code)
        self.status = status
        self.code = code or DEFAULT_CODES.get(status, "error")
        self.message = message or self.code.replace("_", " ")
        self.details = details or {}
        self.headers = headers or {}


class ErrorBodySchema(ma.Schema):
    """The inside of every error response."""

    code = ma.fields.String(required=True, metadata={"description": "machine-readable slug"})
    message = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    details = ma.fields.Dict(metadata={"description": "context, e.g. validation messages"})


class ErrorSchema(ma.Schema):
    """Error envelope shared by every endpoint."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


def error_response(status, code, message, details=None, headers=None):
    """Build the envelope response."""
    response = jsonify({"error": {"code": code, "message": message, "status": status, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_api_error(error):
    """Render an ApiError."""
    return error_response(error.status, error.code, error.message, error.details, error.headers)


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
    headers = dict(data.get("headers") or {})
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, DEFAULT_CODES.get(status, "error"), message, details, headers)


def handle_rate_limit_exceeded(error):
    """Flask-Limiter's 429 (the per-IP admin limit) in the envelope, with the window and Retry-After."""
    from ops_gateway.core.extensions import limiter  # extensions imports this module

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


def handle_unexpected(error):
    """Anything else: log it with the request id, tell the client nothing internal."""
    logger.exception("unhandled exception")
    return error_response(500, "internal_error", "an internal error occurred; quote the request id to support")


def init_app(app):
    """Register the handlers (after flask-smorest's, so ours win)."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit_exceeded)
    app.register_error_handler(UpstreamError, handle_upstream_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(psycopg2.DataError, handle_invalid_value)
    for exc in UNAVAILABLE_ERRORS:
        app.register_error_handler(exc, handle_database_unavailable)
    app.register_error_handler(PoolExhausted, handle_pool_exhausted)
    app.register_error_handler(Exception, handle_unexpected)
