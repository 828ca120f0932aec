"""Domain errors: what services raise when a request must be refused, and the envelope's schema.

Services say *what* went wrong by raising a subclass of one of the kinds below (``NotFound``,
``PaymentRequired``, ``RateLimited``...) with a machine-readable ``code``, a message and details;
they never choose an HTTP status. ``blueprints/envelope.py`` is the one place that maps each
kind to its status and renders the envelope
``{"error": {"code", "message", "status", "details"}}``.
"""

import marshmallow as ma


class GatewayError(Exception):
    """A refusal a client should see: a code, a message, details, optionally a retry delay."""

    code = "error"

    def __init__(self, message=None, details=None, code=None, retry_after=None, headers=None):
        self.code = code or self.code
        self.message = message or self.code.replace("_", " ")
        super().__init__(self.message)
        self.details = details or {}
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.headers = headers or {}  # extra response headers the refusal carries (rate-limit windows)


class BadRequest(GatewayError):
    """The request itself is malformed or out of range."""

    code = "bad_request"


class Unauthenticated(GatewayError):
    """No usable credential."""

    code = "unauthorized"


class PaymentRequired(GatewayError):
    """The caller's credits cannot cover the request."""

    code = "insufficient_credits"


class Forbidden(GatewayError):
    """A valid credential that may not do this."""

    code = "forbidden"


class NotFound(GatewayError):
    """The thing asked for does not exist (or is not the caller's)."""

    code = "not_found"


class Conflict(GatewayError):
    """The request contradicts the current state."""

    code = "conflict"


class RequestTimeout(GatewayError):
    """The client did not send its request in time."""

    code = "request_timeout"


class TooLarge(GatewayError):
    """The request body is over the size limit."""

    code = "payload_too_large"


class Invalid(GatewayError):
    """Well-formed, but the values fail validation."""

    code = "validation_error"


class RateLimited(GatewayError):
    """A limit, quota or block refuses the request for now."""

    code = "rate_limited"


class UpstreamFailed(GatewayError):
    """OpenRouter failed or refused the call."""

    code = "upstream_error"


class UpstreamTimedOut(GatewayError):
    """OpenRouter did not answer in time."""

    code = "upstream_timeout"


class Unavailable(GatewayError):
    """A dependency or capacity limit of the gateway refuses the request for now."""

    code = "service_unavailable"


class ErrorBodySchema(ma.Schema):
    """The inside of every error response."""

    code = ma.fields.String(required=True, metadata={"description": "machine-readable slug"})
    message = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    details = ma.fields.Dict(metadata={"description": "context, e.g. validation messages"})
    request_id = ma.fields.String(
        allow_none=True,
        metadata={"description": "the response's X-Request-ID, to quote to support; null: refused before the app"},
    )


class ErrorSchema(ma.Schema):
    """Error envelope shared by every endpoint."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)
