"""How an OpenRouter call failed: ``UpstreamError`` and its classification from exceptions and statuses.

The gateway chooses its own answer from the ``kind`` (bad_request, not_found, rate_limited,
unavailable, timeout), never from upstream's raw status.
"""

import email.utils
import math
from datetime import UTC, datetime

import requests
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from ops_gateway.core.errors import BadRequest, Forbidden, NotFound, RateLimited, UpstreamFailed, UpstreamTimedOut

# The gateway's answer to each kind of upstream failure: (error kind, envelope code).
ANSWERS = {
    "bad_request": (BadRequest, "upstream_bad_request"),
    "flagged": (Forbidden, "content_flagged"),
    "not_found": (NotFound, "upstream_not_found"),
    "rate_limited": (RateLimited, "upstream_rate_limited"),
    "unavailable": (UpstreamFailed, "upstream_unavailable"),
    "timeout": (UpstreamTimedOut, "upstream_timeout"),
}
# The failures the client's own request caused (upstream refused its body, or its moderation
# flagged the input): the client's errors, never counted as the gateway's or upstream's.
CLIENT_CAUSED = ("bad_request", "flagged")
CREDENTIALS_REJECTED = "upstream rejected the gateway's credentials"
# Upstream error messages are passed through to clients; cap them so a huge body cannot.
MAX_MESSAGE_CHARS = 1000


class UpstreamError(Exception):
    """An upstream failure, classified by ``kind`` so the gateway can choose its own status."""

    # kind is one of: bad_request, flagged, rate_limited, unavailable, timeout, not_found.

    def __init__(self, kind, message, status=None, retry_after=None):
        """Record the kind, a human message, the upstream status and Retry-After seconds."""
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def as_domain_error(self):
        """The gateway's own error for this failure (its status chosen by ``kind``)."""
        kind, code = ANSWERS.get(self.kind, (UpstreamFailed, "upstream_error"))
        return kind(self.message, {"upstream_status": self.status}, code=code, retry_after=self.retry_after or None)


def never_reached_upstream(exc):
    """Whether the request failed while connecting, so no byte of it was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError) or not isinstance(exc, requests.ConnectionError):
        return False
    # requests wraps urllib3's MaxRetryError, whose reason says which stage failed.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def error_for_exception(exc):
    """Classify a requests exception: a read timeout is "timeout", the rest "unavailable"."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return UpstreamError("unavailable", "timed out connecting to upstream")
    # Mid-stream, requests reports a read timeout as a ConnectionError wrapping urllib3's.
    wrapped = exc.args[0] if exc.args else None
    if isinstance(exc, requests.Timeout) or isinstance(wrapped, ReadTimeoutError):
        return UpstreamError("timeout", "upstream did not answer in time")
    return UpstreamError("unavailable", f"upstream connection failed ({type(exc).__name__})")


def error_for_response(response):
    """Map an upstream error status to an UpstreamError."""
    status = response.status_code
    if status in (400, 422):
        return UpstreamError("bad_request", upstream_message(response), status)
    if status == 403 and _flagged_by_moderation(response):
        return UpstreamError("flagged", upstream_message(response), status)
    if status in (401, 403):
        return UpstreamError("unavailable", CREDENTIALS_REJECTED, status)
    if status == 404:
        return UpstreamError("not_found", upstream_message(response), status)
    if status == 429:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return UpstreamError("rate_limited", upstream_message(response), status, retry_after)
    return UpstreamError("unavailable", f"upstream answered with status {status}", status)


def _flagged_by_moderation(response):
    """Whether a 403 is OpenRouter's moderation refusing the input (its error's ``metadata`` names
    the ``reasons`` and the ``flagged_input``), rather than the gateway's credentials."""
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    return isinstance(metadata, dict) and ("flagged_input" in metadata or "reasons" in metadata)


def upstream_message(response):
    """Extract the message of an OpenAI-style ``{"error": {"message": ...}}`` body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        return f"upstream answered with status {response.status_code}"
    return message[:MAX_MESSAGE_CHARS]


def retry_after_seconds(header):
    """Parse Retry-After (delay seconds or an HTTP date) into whole seconds, or None."""
    if not header:
        return None
    try:
        return max(0, math.ceil(float(header)))
    except OverflowError:  # "inf" or 1e999: no wait a caller could honour
        return None
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, math.ceil((moment - datetime.now(UTC)).total_seconds()))
