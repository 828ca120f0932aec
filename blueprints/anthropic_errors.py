"""Errors on /v1/messages in Anthropic's shape, so the anthropic SDK and Claude Code raise their
typed errors (AuthenticationError, PermissionDeniedError, RateLimitError, ...).

Every error the gateway sends is first the one envelope (``envelope``); for the Messages API
routes it is restated, same status and headers (Retry-After, the rate-limit headers), as
``{"type": "error", "error": {"type", "message", "code", "details"}, "request_id"}``: the type
is Anthropic's for the status, ``code`` and ``details`` are the gateway's own.
"""

import json

from flask import g, request

MESSAGES_PATH = "/v1/messages"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status):
    """Anthropic's error type for an HTTP status (``api_error`` for any other 5xx)."""
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error(status, code, message, details=None):
    """The error object of an Anthropic error body (also what a stream's ``error`` event carries)."""
    return {
        "type": "error",
        "error": {"type": error_type(status), "message": message, "code": code, "details": details or {}},
    }


def restate_error(response):
    """After each request: a Messages API route's error envelope restated in Anthropic's shape."""
    if response.status_code < 400 or not request.path.startswith(MESSAGES_PATH) or not response.is_json:
        return response
    envelope = (response.get_json(silent=True) or {}).get("error")
    if not isinstance(envelope, dict):
        return response
    body = anthropic_error(response.status_code, envelope.get("code"), envelope.get("message"), envelope.get("details"))
    body["request_id"] = g.get("request_id")
    response.set_data(json.dumps(body))
    return response


def init_app(app):
    """Restate errors app-wide: an unknown path under /v1/messages reaches no blueprint's hooks."""
    app.after_request(restate_error)
